# Production image: the app with Postgres (DATABASE_URL), Upstash QStash (QSTASH_URL) and S3/R2 storage.
# tests/test_image.py repeats these steps in a fresh virtual environment (keep the two in step).

# --- build: install the package and its pinned dependencies into a virtual environment -----------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
RUN pip install -c constraints.txt .

# --- runtime: slim, Tesseract with its language data, non-root -----------------------------------
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tzdata libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /srv curaway \
 && install -d -o curaway -g curaway /srv/var
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
# Migrations are not package data: they sit here and MIGRATIONS_DIR says where.
COPY alembic.ini ./
COPY migrations ./migrations
USER curaway
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    MIGRATIONS_DIR=/srv/migrations \
    TESSDATA_PREFIX=/usr/share/tesseract-ocr/5/tessdata
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('PORT', '8000')}/healthz\", timeout=4)"]
# Migrations first (idempotent), then `exec` the server so SIGTERM reaches it (graceful shutdown:
# in-flight requests get SHUTDOWN_GRACE_S). Settings refuse development secrets and local stand-ins here.
CMD ["sh", "-c", "curaway migrate && exec curaway serve --host \"$HOST\" --port \"$PORT\""]
