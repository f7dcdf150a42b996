"""The embedded server's own signer, checked from outside: the protocol's test vector, the official
`qstash.Receiver`, and the runtime's verifier (which is written separately)."""

from __future__ import annotations

import time

import pytest
from qstash import Receiver
from qstash.errors import SignatureError as ReceiverError

from app.devqstash.signing import sign_delivery
from app.runtime.signing import SignatureError, verify

# shared/docs/qstash-protocol.md, section 5.1
VECTOR_KEYS = ("sig_test_current_key_1234567890", "sig_test_next_key_0987654321")
VECTOR_URL = "http://127.0.0.1:9000/api/workflow"
VECTOR_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJVcHN0YXNoIiwic3ViIjoiaHR0cDovLzEyNy4wLjAuMTo5MDAwL2FwaS93b3JrZmxvdy"
    "IsImV4cCI6MTcwMDAwMDMwMCwibmJmIjoxNzAwMDAwMDAwLCJpYXQiOjE3MDAwMDAwMDAsImp0aSI6Imp3dF90ZXN0dmVjdG9yMDAwMDAwMDAwMDAw"
    "MDAxIiwiYm9keSI6Ims2STVjYWtVNWVyTDhLalNVVlROb3duRHdjY3Z1NWtVMUh4Zzg4dG9GWWc9In0.gHAB328M794Y7sZ_P6MoskeeFaLxk8d9wP2"
    "QQHnPB_8"
)
RECEIVER = Receiver(current_signing_key=VECTOR_KEYS[0], next_signing_key=VECTOR_KEYS[1])


def test_the_signer_reproduces_the_protocol_test_vector():
    token = sign_delivery(b'{"hello":"world"}', VECTOR_URL, VECTOR_KEYS[0], now=1700000000,
                          jti="jwt_testvector000000000000001")
    assert token == VECTOR_TOKEN


@pytest.mark.parametrize("key", VECTOR_KEYS)
@pytest.mark.parametrize("body", [b"", b'{"hello":"world"}', "h\u00e9llo".encode()])
def test_the_official_receiver_and_the_runtime_accept_a_live_token(key: str, body: bytes):
    token = sign_delivery(body, VECTOR_URL, key)
    RECEIVER.verify(signature=token, body=body.decode(), url=VECTOR_URL)
    assert verify(token, body, VECTOR_URL, VECTOR_KEYS)["sub"] == VECTOR_URL


@pytest.mark.parametrize(
    ("body", "url", "key", "now"),
    [
        (b"tampered", VECTOR_URL, VECTOR_KEYS[0], None),
        (b"x", "http://127.0.0.1:9000/other", VECTOR_KEYS[0], None),
        (b"x", VECTOR_URL, "sig_not_one_of_the_two_keys_000", None),
        (b"x", VECTOR_URL, VECTOR_KEYS[0], time.time() - 400),  # expired
    ],
    ids=["body", "url", "key", "expired"],
)
def test_both_verifiers_refuse_a_token_that_does_not_match(body: bytes, url: str, key: str, now: float | None):
    token = sign_delivery(b"x", VECTOR_URL, key, now=now)
    with pytest.raises(ReceiverError):
        RECEIVER.verify(signature=token, body=body.decode(), url=url)
    with pytest.raises(SignatureError):
        verify(token, body, url, VECTOR_KEYS)
