# Production image: the app with Postgres (DATABASE_URL) and Upstash QStash (QSTASH_URL).
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng tzdata libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /srv
COPY pyproject.toml constraints.txt README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir -c constraints.txt .

ENV ENV=production HOST=0.0.0.0 PORT=8000
EXPOSE 8000
# Migrations first (idempotent), then serve. Settings refuse development secrets here.
CMD ["sh", "-c", "curaway migrate && curaway serve --host 0.0.0.0 --port ${PORT}"]
