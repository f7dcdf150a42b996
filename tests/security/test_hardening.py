"""The HTTP hardening (app/security): body limits before reading, rate limits, headers, CORS, JSON errors.

The middleware never touches the database, so these tests run on SQLite only.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.security.ratelimit import RateLimitConfigError, RateLimiter, parse_rules
from tests.support.service import live_service

UPLOAD = "/cases/case_x/documents"
QUIET = {"embedding_warm_up": False}  # no model loading in the background: nothing here matches


@pytest.fixture
def sqlite_url(sqlite_templates, tmp_path) -> str:  # noqa: ANN001
    return sqlite_templates.fresh(tmp_path)


async def raw_request(base_url: str, head: str, chunks: list[bytes]) -> bytes:
    """Send a request head, then body bytes until the server answers (a chunked body is never ended)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    answer = asyncio.create_task(reader.read(4096))
    try:
        writer.write(head.encode())
        for chunk in chunks:
            if answer.done():
                break
            writer.write(chunk)
            try:
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError):
                break
        return await asyncio.wait_for(answer, timeout=20)
    finally:
        writer.close()


async def test_bodies_over_the_limit_are_refused_413_before_they_are_read(sqlite_url):
    async with live_service(sqlite_url, None, **QUIET) as svc:
        settings = svc.services.settings
        # A declared length over MAX_UPLOAD_BYTES: answered at once, no body sent at all.
        head = f"POST {UPLOAD} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        answer = await raw_request(svc.base_url, head + f"Content-Length: {settings.max_upload_bytes * 2}\r\n\r\n", [])
        assert answer.startswith(b"HTTP/1.1 413") and b'"detail":"request body too large' in answer
        # A chunked upload that never ends: answered 413 once it passes the limit.
        mib = b"x" * (1024 * 1024)
        chunk = b"%x\r\n" % len(mib) + mib + b"\r\n"
        count = settings.max_upload_bytes // len(mib) + 2
        preamble = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n'
        first = b"%x\r\n" % len(preamble) + preamble + b"\r\n"
        answer = await raw_request(svc.base_url, head + "Transfer-Encoding: chunked\r\n\r\n", [first] + [chunk] * count)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # Any other body: MAX_REQUEST_BYTES.
        async with httpx.AsyncClient(base_url=svc.base_url) as client:
            big = await client.post(
                "/patients",
                content=b"{" + b" " * settings.max_request_bytes + b"}",
                headers={"Content-Type": "application/json"},
            )
            assert big.status_code == 413 and "limit" in big.json()["detail"]


async def test_rate_limits_count_per_token_and_per_ip_and_answer_429_with_retry_after(sqlite_url):
    async with (
        live_service(sqlite_url, None, **QUIET, rate_limits="POST /patients=2/60") as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):

        async def post(token: str, ip: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": ip}
            return await client.post("/patients", json={"name": "A", "email": "a@example.org"}, headers=headers)

        assert [(await post("token-a", "10.0.0.1")).status_code for _ in range(2)] == [401, 401]
        limited = await post("token-a", "10.0.0.2")  # the same token from elsewhere
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert "at most 2 per 60 s" in limited.json()["detail"]
        assert (await post("token-b", "10.0.0.1")).status_code == 429  # the same IP with another token
        assert (await post("token-b", "10.0.0.3")).status_code == 401  # neither seen: through
        assert (await client.get("/procedures", headers={"X-Forwarded-For": "10.0.0.1"})).status_code == 200


def test_the_limiter_refills_and_says_how_long_to_wait():
    clock = [1000.0]
    limiter = RateLimiter(parse_rules("POST /cases/*/documents=3/60"), now=lambda: clock[0])
    found = limiter.rule_for("POST", "/cases/case_1/documents")
    assert found is not None and limiter.rule_for("GET", "/cases/case_1/documents") is None
    index, rule = found
    assert [limiter.take(index, rule, ["ip:a"]) for _ in range(3)] == [0, 0, 0]
    assert limiter.take(index, rule, ["ip:a"]) == pytest.approx(20.0)
    clock[0] += 20
    assert limiter.take(index, rule, ["ip:a"]) == 0
    with pytest.raises(RateLimitConfigError, match="nonsense"):
        parse_rules("nonsense")


async def test_security_headers_cors_and_json_errors(sqlite_url):
    def with_failing_route(app):  # noqa: ANN001, ANN202
        async def fail() -> None:
            raise RuntimeError("secret internals")

        app.add_api_route("/fail-for-test", fail)
        return app

    async with (
        live_service(sqlite_url, None, **QUIET, wrap=with_failing_route) as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        ok = await client.get("/healthz")
        missing = await client.get("/nowhere")
        assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}
        for response in (ok, missing):
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        preflight = await client.options(
            "/cases", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in preflight.headers  # closed by default
        failed = await client.get("/fail-for-test")
        assert failed.status_code == 500 and failed.json() == {"detail": "internal server error"}
        schema = (await client.get("/openapi.json")).json()
        upload = schema["paths"]["/cases/{case_id}/documents"]["post"]["responses"]
        assert {"413", "429"} <= set(upload)
    async with (
        live_service(sqlite_url, None, **QUIET, cors_allow_origins="https://app.example") as svc,
        httpx.AsyncClient(base_url=svc.base_url) as client,
    ):
        allowed = await client.options(
            "/cases", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
