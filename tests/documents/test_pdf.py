"""PDF intake: what is accepted, and the plain-words error for each kind of unusable file."""

from __future__ import annotations

import io
import zipfile

import pymupdf
import pytest

from app.documents.pdf import (
    CorruptPdf,
    EmptyFile,
    NotAPdf,
    PasswordProtectedPdf,
    PdfError,
    PdfInfo,
    TruncatedPdf,
    inspect_pdf,
    sniff,
)
from tests.documents.conftest import ENCRYPTED, SCANNED, TEXT_FIXTURES, build_pdf, fixture_bytes

JARGON = ("mupdf", "xref", "trailer", "stream", "object", "code=", "exception")


@pytest.mark.parametrize(("name", "pages"), [*TEXT_FIXTURES.items(), (SCANNED, 1)])
def test_every_readable_fixture_is_a_pdf_with_its_page_count(name: str, pages: int) -> None:
    data = fixture_bytes(name)

    assert sniff(data[:1024])
    assert inspect_pdf(data) == PdfInfo(page_count=pages, encrypted=False)


def test_the_password_protected_fixture_is_refused_naming_the_password() -> None:
    with pytest.raises(PasswordProtectedPdf) as raised:
        inspect_pdf(fixture_bytes(ENCRYPTED))

    assert raised.value.status_code == 422
    assert raised.value.code == "password_protected_pdf"
    assert "password-protected" in raised.value.detail
    assert "remove the password" in raised.value.detail


def test_a_pdf_encrypted_only_with_an_owner_password_opens_and_is_flagged() -> None:
    with pymupdf.open(stream=build_pdf("Report text"), filetype="pdf") as doc:
        data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="")

    assert inspect_pdf(data) == PdfInfo(page_count=1, encrypted=True)


def test_a_pdf_with_a_user_password_is_refused() -> None:
    with pymupdf.open(stream=build_pdf("Report text"), filetype="pdf") as doc:
        data = doc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="secret")

    with pytest.raises(PasswordProtectedPdf):
        inspect_pdf(data)


@pytest.mark.parametrize(
    "head",
    [b"%PDF-1.7\n", b"\xef\xbb\xbf%PDF-1.4", b"\r\n  \t%PDF-2.0", b"\x00\x00%PDF-1.3"],
)
def test_sniff_accepts_the_magic_after_a_bom_or_whitespace(head: bytes) -> None:
    assert sniff(head)


@pytest.mark.parametrize("head", [b"", b"%PD", b"PDF-1.7", b"junk %PDF-1.7", b"\x89PNG\r\n\x1a\n"])
def test_sniff_refuses_anything_else(head: bytes) -> None:
    assert not sniff(head)


def test_leading_whitespace_and_trailing_bytes_are_tolerated_like_real_readers() -> None:
    data = fixture_bytes("lab_report_panel.pdf")

    assert inspect_pdf(b"\xef\xbb\xbf\r\n" + data).page_count == 2
    assert inspect_pdf(data + b"\n\x00\x00 trailing junk").page_count == 2


def test_an_intact_pdf_without_its_eof_marker_is_accepted() -> None:
    data = fixture_bytes("lab_report_panel.pdf")

    assert inspect_pdf(data.replace(b"%%EOF", b"")).page_count == 2
    assert inspect_pdf(data[: data.rindex(b"%%EOF") + 3]).page_count == 2  # cut inside the marker


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(EmptyFile) as raised:
        inspect_pdf(b"")

    assert raised.value.status_code == 400
    assert "empty" in raised.value.detail


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def png_bytes() -> bytes:
    return pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 4, 4), False).tobytes("png")


def jpeg_bytes() -> bytes:
    return pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 4, 4), False).tobytes("jpg")


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (png_bytes(), "a PNG image"),
        (jpeg_bytes(), "a JPEG image"),
        (docx_bytes(), "a Word document"),
        (b"PK\x03\x04" + b"\x00" * 60, "a ZIP archive or office document"),
        ("Blood test results: Hämoglobin 13.2 g/dL\n".encode(), "plain text"),
        (b"<!DOCTYPE html><html><body>report</body></html>", "an HTML web page"),
        (b"\x00\x01\x02\x03\xfe\xff" * 20, None),
    ],
    ids=["png", "jpeg", "docx", "zip", "text", "html", "unknown"],
)
def test_a_file_that_is_not_a_pdf_is_refused_saying_what_it_looks_like(data: bytes, looks_like: str | None) -> None:
    with pytest.raises(NotAPdf) as raised:
        inspect_pdf(data)

    assert raised.value.status_code == 415
    assert raised.value.looks_like == looks_like
    assert "not a PDF" in raised.value.detail
    assert "upload the document as a PDF" in raised.value.detail
    if looks_like:
        assert looks_like in raised.value.detail


@pytest.mark.parametrize("name", ["lab_report_panel.pdf", SCANNED])
@pytest.mark.parametrize("keep", [12, 0.01, 0.3, 0.5, 0.9, -30])
def test_a_truncated_pdf_is_refused_as_incomplete(name: str, keep: float) -> None:
    data = fixture_bytes(name)
    end = int(len(data) * keep) if isinstance(keep, float) else keep  # -30: into the trailer

    with pytest.raises(TruncatedPdf) as raised:
        inspect_pdf(data[:end])

    assert "incomplete" in raised.value.detail
    assert "upload the complete file again" in raised.value.detail


def test_a_pdf_header_with_no_document_is_refused_as_damaged() -> None:
    with pytest.raises(CorruptPdf) as raised:
        inspect_pdf(b"%PDF-1.7\n%%EOF\n")

    assert not isinstance(raised.value, TruncatedPdf)
    assert "damaged" in raised.value.detail


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 32,
        b"%PDF-1.7\n%%EOF\n",
        fixture_bytes("lab_report_panel.pdf")[:500],
        fixture_bytes(ENCRYPTED),
    ],
)
def test_error_messages_are_plain_words_with_what_to_do(data: bytes) -> None:
    with pytest.raises(PdfError) as raised:
        inspect_pdf(data)

    detail = raised.value.detail
    assert detail == str(raised.value)
    assert "Please" in detail
    assert not any(word in detail.lower() for word in JARGON)
