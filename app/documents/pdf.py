"""PDF intake: is this upload really a readable PDF, and how many pages does it have?

Errors (messages are shown to patients: plain words, and what to do):

    PdfError (HTTPFacingError, 422)     the file cannot be used as a PDF document
    +-- EmptyFile (400)                 zero bytes
    +-- NotAPdf (415)                   another kind of file; says which when it is recognisable
    +-- CorruptPdf                      starts like a PDF but cannot be read
    |   +-- TruncatedPdf                cut off before its end (an interrupted upload or download)
    +-- PasswordProtectedPdf            needs a password to open

Invariants:
- `sniff` is checked before MuPDF sees the bytes (MuPDF would happily open a PNG as a one-page
  document even when told the data is a PDF).
- A PDF that MuPDF had to repair and that lacks its `%%EOF` end marker is treated as truncated:
  a repaired prefix of a document would otherwise be analysed silently as if it were complete.
- PyMuPDF is not thread-safe: every use of it (here and in `ocr.py`) holds `PYMUPDF_LOCK`, so
  callers may run these sync functions in any worker thread.
"""

from __future__ import annotations

import codecs
import threading
from dataclasses import dataclass
from typing import ClassVar

import pymupdf

from app.errors import HTTPFacingError

PYMUPDF_LOCK = threading.RLock()
SNIFF_BYTES = 1024
_LEADING_JUNK = b"\xef\xbb\xbf\x00\t\n\x0c\r "  # UTF-8 BOM, NUL and whitespace, as readers skip
_EOF_WINDOW = 2048


class PdfError(HTTPFacingError):
    """The upload cannot be used as a PDF document; `code` is a stable machine-readable name."""

    status_code = 422
    code: ClassVar[str] = "pdf_unreadable"


class EmptyFile(PdfError):
    status_code = 400
    code = "empty_file"

    def __init__(self) -> None:
        super().__init__("The file is empty (0 bytes). Please choose the document again and upload it.")


class NotAPdf(PdfError):
    status_code = 415
    code = "not_a_pdf"

    def __init__(self, looks_like: str | None) -> None:
        what = f"it looks like {looks_like}" if looks_like else "we do not recognise its format"
        super().__init__(
            f"This file is not a PDF ({what}). Please upload the document as a PDF: most phones, "
            "scanners and word processors can save or export a PDF."
        )
        self.looks_like = looks_like


class CorruptPdf(PdfError):
    code = "corrupt_pdf"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail
            or "This PDF is damaged and cannot be read. Please open it on your device to check it, "
            "save or export it again as a PDF, and upload the new file."
        )


class TruncatedPdf(CorruptPdf):
    code = "truncated_pdf"

    def __init__(self) -> None:
        super().__init__(
            "This PDF is incomplete: the file ends before the document does, usually because an "
            "upload or download was interrupted. Please upload the complete file again."
        )


class PasswordProtectedPdf(PdfError):
    code = "password_protected_pdf"

    def __init__(self) -> None:
        super().__init__(
            "This PDF is password-protected, so we cannot read it. Please remove the password "
            "(open it with the password and save or print it as a new PDF) and upload it again."
        )


@dataclass(frozen=True, slots=True)
class PdfInfo:
    """`encrypted` is True for a PDF that is encrypted but opens without a password."""

    page_count: int
    encrypted: bool


def sniff(first_bytes: bytes) -> bool:
    """True if the bytes start with `%PDF-`, after at most a BOM and whitespace."""
    return first_bytes[:SNIFF_BYTES].lstrip(_LEADING_JUNK).startswith(b"%PDF-")


def inspect_pdf(data: bytes) -> PdfInfo:
    """Page count and encryption of a PDF; raises a `PdfError` subclass if it is unusable."""
    with PYMUPDF_LOCK, open_pdf(data) as doc:
        for number in range(doc.page_count):
            try:
                doc.load_page(number)
            except Exception as exc:
                raise CorruptPdf() from exc
        encryption = (doc.metadata or {}).get("encryption")  # set for PDFs that opened without a password
        return PdfInfo(page_count=doc.page_count, encrypted=bool(doc.is_encrypted or encryption))


def open_pdf(data: bytes) -> pymupdf.Document:
    """Open checked PDF bytes with PyMuPDF (hold `PYMUPDF_LOCK` while using the document)."""
    if not data:
        raise EmptyFile()
    if not sniff(data):
        raise NotAPdf(describe(data))
    with PYMUPDF_LOCK:
        try:
            doc = pymupdf.open(stream=data, filetype="pdf")
        except Exception as exc:  # MuPDF raises FileDataError, RuntimeError or its own FzError*
            raise (CorruptPdf() if _has_eof(data) else TruncatedPdf()) from exc
        try:
            _check_opened(doc, data)
        except PdfError:
            doc.close()
            raise
        return doc


def _check_opened(doc: pymupdf.Document, data: bytes) -> None:
    if doc.needs_pass:
        raise PasswordProtectedPdf()
    if doc.is_repaired and not _has_eof(data):
        raise TruncatedPdf()
    if doc.page_count < 1:
        raise CorruptPdf("This PDF has no pages. Please check the file and upload the complete document.")


def _has_eof(data: bytes) -> bool:
    return b"%%EOF" in data[-_EOF_WINDOW:]


def describe(data: bytes) -> str | None:
    """A patient-readable guess at what a non-PDF file is ("a PNG image"), or None."""
    head = data[:SNIFF_BYTES]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "a HEIC photo"
    if head.startswith(b"PK\x03\x04"):
        if b"word/" in data[:65536]:
            return "a Word document"
        return "a ZIP archive or office document"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        return "an older Microsoft Office document"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "an HTML web page"
    if _is_text(head):
        return "plain text"
    return None


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"{\\rtf", "a rich-text (RTF) document"),
)


def _is_text(head: bytes) -> bool:
    try:  # incremental: a character cut at the end of `head` is not an error
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)
