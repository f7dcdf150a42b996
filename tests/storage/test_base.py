"""Helpers shared by the backends: key validation, stream peeking, chunking an upload."""

from __future__ import annotations

import io

import pytest

from app.storage import InvalidKey, iter_chunks, peek, validate_key
from tests.storage.support import stream


@pytest.mark.parametrize("key", ["doc.pdf", "cases/case_1/documents/doc_01HX.pdf", "a/b-c/d_e.f.g"])
def test_safe_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) == key


def test_a_non_string_key_is_refused() -> None:
    with pytest.raises(InvalidKey):
        validate_key(None)  # type: ignore[arg-type]


async def test_peek_returns_the_head_and_the_whole_stream() -> None:
    data = bytes(range(256)) * 40

    head, chunks = await peek(stream(data, 100), 1024)

    assert head == data[:1024]
    assert b"".join([c async for c in chunks]) == data


async def test_peek_on_a_short_or_empty_stream() -> None:
    head, chunks = await peek(stream(b"%PDF"), 1024)
    assert head == b"%PDF"
    assert [c async for c in chunks] == [b"%PDF"]

    head, chunks = await peek(stream(b""), 1024)
    assert head == b""
    assert [c async for c in chunks] == []


async def test_iter_chunks_reads_until_eof() -> None:
    source = io.BytesIO(b"a" * 2500)

    async def read(n: int) -> bytes:
        return source.read(n)

    assert [len(c) async for c in iter_chunks(read, 1000)] == [1000, 1000, 500]


async def test_both_backends_satisfy_the_protocol(tmp_path, s3_storage) -> None:  # noqa: ANN001
    from app.storage import LocalStorage, ObjectStorage

    assert isinstance(LocalStorage(tmp_path), ObjectStorage)
    assert isinstance(s3_storage, ObjectStorage)
