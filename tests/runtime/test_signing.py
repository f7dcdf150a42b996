"""Upstash-Signature: QStash's test vector, and every way a workflow endpoint refuses a request."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from app.config import DEV_CURRENT_SIGNING_KEY, DEV_NEXT_SIGNING_KEY
from app.runtime.signing import SignatureError, body_hash, sign, verify
from tests.runtime.workflows import ALL, Recorder
from tests.support.service import live_service

VECTOR_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJVcHN0YXNoIiwic3ViIjoiaHR0cDovLzEyNy4wLjAuMTo5MDAwL2FwaS93b3JrZmxvdyIsImV4cCI6MTcwMDAwMDMwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDAsImp0aSI6Imp3dF90ZXN0dmVjdG9yMDAwMDAwMDAwMDAwMDAxIiwiYm9keSI6Ims2STVjYWtVNWVyTDhLalNVVlROb3duRHdjY3Z1NWtVMUh4Zzg4dG9GWWc9In0.gHAB328M794Y7sZ_P6MoskeeFaLxk8d9wP2QQHnPB_8"
)
URL = "http://127.0.0.1:9000/api/workflow"
KEYS = ("sig_test_current_key_1234567890", "sig_test_next_key_0987654321")


def test_sign_reproduces_the_qstash_test_vector():
    token = sign(b'{"hello":"world"}', URL, KEYS[0], now=1700000000, jti="jwt_testvector000000000000001")
    assert token == VECTOR_TOKEN
    assert body_hash(b"") == "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="


def test_the_expired_vector_is_refused():
    with pytest.raises(SignatureError, match="expired"):
        verify(VECTOR_TOKEN, b'{"hello":"world"}', URL, KEYS)


def test_next_key_is_accepted_during_rotation():
    token = sign(b"x", URL, KEYS[1])
    assert verify(token, b"x", URL, KEYS)["sub"] == URL


def test_body_hash_without_padding_is_accepted():
    claims = {"iss": "Upstash", "sub": URL, "exp": int(time.time()) + 60, "nbf": int(time.time()), "body": body_hash(b"x").rstrip("=")}
    token = jwt.encode(claims, KEYS[0].encode(), algorithm="HS256")
    verify(token, b"x", URL, KEYS)


def test_leeway_really_applies():
    now = time.time()
    expired_3s_ago = sign(b"x", URL, KEYS[0], now=now - 303)
    verify(expired_3s_ago, b"x", URL, KEYS, leeway_s=5)
    with pytest.raises(SignatureError):
        verify(expired_3s_ago, b"x", URL, KEYS, leeway_s=1)
    not_yet_valid = sign(b"x", URL, KEYS[0], now=now + 3)
    verify(not_yet_valid, b"x", URL, KEYS, leeway_s=5)
    with pytest.raises(SignatureError):
        verify(not_yet_valid, b"x", URL, KEYS, leeway_s=1)


def _claims(url: str, body: bytes, **changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {"iss": "Upstash", "sub": url, "exp": now + 300, "nbf": now, "iat": now, "jti": "jwt_x", "body": body_hash(body)}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _bad_signatures(url: str, body: bytes) -> dict[str, str | None]:
    now = int(time.time())
    key = DEV_CURRENT_SIGNING_KEY.encode()
    unsigned = jwt.encode(_claims(url, body), key="", algorithm="none")
    return {
        "missing header": None,
        "wrong key": jwt.encode(_claims(url, body), b"sig_not_the_right_key_at_all_000", algorithm="HS256"),
        "tampered body": jwt.encode(_claims(url, body + b" "), key, algorithm="HS256"),
        "wrong url": jwt.encode(_claims(url + "x", body), key, algorithm="HS256"),
        "expired": jwt.encode(_claims(url, body, exp=now - 60, nbf=now - 360, iat=now - 360), key, algorithm="HS256"),
        "not yet valid": jwt.encode(_claims(url, body, nbf=now + 120, iat=now + 120, exp=now + 420), key, algorithm="HS256"),
        "alg none": unsigned,
        "alg HS512": jwt.encode(_claims(url, body), key, algorithm="HS512"),
        "wrong issuer": jwt.encode(_claims(url, body, iss="NotUpstash"), key, algorithm="HS256"),
        "no sub": jwt.encode(_claims(url, body, sub=None), key, algorithm="HS256"),
        "garbage": "not-a-jwt",
    }


async def test_workflow_endpoint_answers_401_and_changes_nothing_on_every_bad_signature(database_url):
    recorder = Recorder()
    async with live_service(database_url, ALL, deps=recorder) as svc:
        run, _ = await svc.runtime.store.create_run("wfr_sigtest", "seven-steps", {})
        url = f"{svc.base_url}/workflows/seven-steps"
        body = b'{"run_id":"wfr_sigtest","position":0}'
        async with httpx.AsyncClient() as client:
            for case, token in _bad_signatures(url, body).items():
                headers = {"Content-Type": "application/json"}
                if token is not None:
                    headers["Upstash-Signature"] = token
                response = await client.post(url, content=body, headers=headers)
                assert response.status_code == 401, case
                assert "signature" in response.json()["detail"].lower(), case
            assert [e.type for e in await svc.events(run.id)] == ["workflow.started"]
            assert await svc.steps(run.id) == []
            assert recorder.order[run.id] == []
            # The same request, properly signed with the next key, is accepted: the test can fail.
            good = sign(body, url, DEV_NEXT_SIGNING_KEY)
            response = await client.post(url, content=body, headers={"Upstash-Signature": good})
            assert response.status_code == 200
        assert (await svc.wait(run.id)).status == "completed"
