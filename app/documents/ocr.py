"""The text of every page of a PDF: its text layer, or OCR where a page has none.

`extract_pages` is synchronous and CPU-bound (about 0.5-3 s per scanned page): run it in a
worker thread. It takes PyMuPDF's text layer page by page; a page with no text layer (almost no
text, but a scanned image covering it, or many vector paths) is OCR'd by the OCR engines named in
`engines`, in that order of preference, among those available:

- "tesseract": PyMuPDF's built-in Tesseract (`Page.get_textpage_ocr(full=True)`), which needs only
  Tesseract's language data (`<lang>.traineddata`, Debian `tesseract-ocr-eng`);
- "rapidocr": RapidOCR on onnxruntime (`rapid_ocr.py`), Python packages only, its models in the wheel.

A page takes the first engine's text that has at least `MIN_TEXT_CHARS` characters (else the
longest any engine read), so a second engine reads what the first could not; an engine that
raises is skipped while another remains.

Where the language data lives: the `tessdata_prefix` given (the `TESSDATA_PREFIX` setting,
either the tessdata directory itself or its parent), else, unless `search_standard_paths` is
False, the usual install locations in `STANDARD_TESSDATA_DIRS` (Debian/Ubuntu, Fedora,
Homebrew). This module never reads environment variables.

Invariants:
- Never a silent empty result: `needs_ocr` is False only when no page still needs OCR and at
  least one page has text. Otherwise `reason` says why in plain words, e.g. "2 of 2 pages have
  no text layer and OCR (Tesseract language data for 'eng') is not installed".
- A page OCR'd successfully that yields no text is a blank page, not a page needing OCR.
- A page whose content MuPDF cannot decode and that yields nothing raises `CorruptPdf`.
- The page object stays referenced while its OCR text page is used (PyMuPDF requirement), and
  all PyMuPDF work holds `PYMUPDF_LOCK` (PyMuPDF is not thread-safe).
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pymupdf

from app.config import OCR_ENGINES as ENGINES
from app.documents import rapid_ocr
from app.documents.pdf import PYMUPDF_LOCK, CorruptPdf, open_pdf

OCR_DPI = 200  # 72 dpi misreads small print ("L5" as "LS"); 150-300 read the fixtures exactly
MIN_TEXT_CHARS = 20  # fewer non-space characters than this is "no text layer" on a page with content
ENOUGH_TEXT_CHARS = 200  # this many is a real text layer, even over a full-page image
MIN_IMAGE_COVERAGE = 0.5  # images covering half the page make it a scan
MIN_VECTOR_PATHS = 10  # text converted to outlines: many paths, no text
STANDARD_TESSDATA_DIRS: tuple[str, ...] = (
    "/usr/share/tesseract-ocr/*/tessdata",
    "/usr/share/tesseract-ocr/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/usr/local/share/tesseract-ocr/*/tessdata",
    "/opt/homebrew/share/tessdata",
)


@dataclass(frozen=True, slots=True)
class PageText:
    """One page: `number` is 1-based; `needs_ocr` means its text is missing (OCR unavailable)."""

    number: int
    text: str
    ocr: bool = False
    needs_ocr: bool = False


@dataclass(frozen=True, slots=True)
class PageTexts:
    """Every page's text, and whether the document still needs OCR (then `reason` says why)."""

    pages: tuple[PageText, ...]
    needs_ocr: bool
    reason: str | None = None

    @property
    def page_count(self) -> int:
        return len(self.pages)

    @property
    def text(self) -> str:
        """All page texts, pages separated by a blank line."""
        return "\n\n".join(page.text for page in self.pages)

    @property
    def ocr_page_numbers(self) -> list[int]:
        return [page.number for page in self.pages if page.ocr]


def extract_pages(
    data: bytes,
    *,
    tessdata_prefix: str | None,
    language: str = "eng",
    search_standard_paths: bool = True,
    dpi: int = OCR_DPI,
    engines: Sequence[str] = ("tesseract",),
) -> PageTexts:
    """Text per page, OCR'ing pages without a text layer; raises `PdfError` for unusable PDFs."""
    with PYMUPDF_LOCK, open_pdf(data) as doc:
        layer = [_text_layer(page) for page in doc]
        scans = [number for number, (_, scanned) in enumerate(layer) if scanned]
        ocr_texts: dict[int, str] = {}
        failures: dict[int, str] = {}
        readers = _readers(engines, tessdata_prefix, language, search_standard_paths) if scans else []
        for number in scans if readers else ():
            try:
                ocr_texts[number] = _read_scan(doc[number], readers, dpi)
            except Exception as exc:  # MuPDF/OCR engine errors: report, never crash the step
                failures[number] = _first_line(exc)
    pages = tuple(_page(number, text, number in scans, ocr_texts) for number, (text, _) in enumerate(layer))
    return _summarise(pages, _missing(engines, language), scans, failures, ocr_available=bool(readers))


Reader = Callable[[pymupdf.Page, int], str]


def _readers(engines: Sequence[str], tessdata_prefix: str | None, language: str, search: bool) -> list[Reader]:
    """The available engines among `engines`, in their order, as page readers."""
    unknown = [name for name in engines if name not in ENGINES]
    if unknown:
        raise ValueError(f"unknown OCR engine {unknown[0]!r}; known engines: {', '.join(ENGINES)}")
    readers: list[Reader] = []
    for name in engines:
        if name == "tesseract":
            tessdata = find_tessdata(tessdata_prefix, language, search_standard_paths=search)
            if tessdata is not None:
                readers.append(partial(_ocr, tessdata=tessdata, language=language))
        elif rapid_ocr.available():
            readers.append(_rapid_ocr)
    return readers


def _read_scan(page: pymupdf.Page, readers: list[Reader], dpi: int) -> str:
    """The first reader's text with `MIN_TEXT_CHARS` characters, else the longest; raises if all fail."""
    texts: list[str] = []
    error: Exception | None = None
    for read in readers:
        try:
            text = read(page, dpi)
        except Exception as exc:  # try the next engine; re-raised below if none reads the page
            error = exc
            continue
        if len("".join(text.split())) >= MIN_TEXT_CHARS:
            return text
        texts.append(text)
    if not texts and error is not None:
        raise error
    return max(texts, key=len)


def _missing(engines: Sequence[str], language: str) -> str:
    """What to install for OCR, in the words of the `needs_ocr` reason."""
    names = [f"Tesseract language data for '{language}'" if name == "tesseract" else "rapidocr-onnxruntime"
             for name in engines]
    return f"OCR ({', '.join(names)}) is not installed" if names else "OCR is disabled"


def find_tessdata(prefix: str | None, language: str, *, search_standard_paths: bool = True) -> Path | None:
    """The first directory holding `<lang>.traineddata` for every language in `language`."""
    candidates: list[Path] = []
    if prefix:
        candidates += [Path(prefix), Path(prefix) / "tessdata"]
    if search_standard_paths:
        for pattern in STANDARD_TESSDATA_DIRS:
            candidates += [Path(p) for p in sorted(glob.glob(pattern), reverse=True)]  # newest version first
    languages = [lang for lang in language.split("+") if lang]
    for directory in candidates:
        if languages and all((directory / f"{lang}.traineddata").is_file() for lang in languages):
            return directory
    return None


def _text_layer(page: pymupdf.Page) -> tuple[str, bool]:
    """The page's text layer, and whether the page looks scanned (needs OCR)."""
    pymupdf.TOOLS.mupdf_warnings(reset=True)
    text = page.get_text("text", sort=True)
    chars = len("".join(text.split()))
    if chars >= ENOUGH_TEXT_CHARS:
        return text, False
    coverage = _image_coverage(page)
    if coverage >= MIN_IMAGE_COVERAGE:
        return text, True
    if chars >= MIN_TEXT_CHARS:
        return text, False
    if coverage > 0 or len(page.get_cdrawings()) >= MIN_VECTOR_PATHS:
        return text, True
    if chars == 0 and "error" in pymupdf.TOOLS.mupdf_warnings(reset=True):
        raise CorruptPdf(
            f"Page {page.number + 1} of this PDF is damaged and cannot be read. Please save or "
            "export the document again as a PDF and upload the new file."
        )
    return text, False


def _image_coverage(page: pymupdf.Page) -> float:
    """Share of the page's area covered by images (overlaps counted twice, capped at 1)."""
    area = abs(page.rect)
    if not area:
        return 0.0
    covered = sum(abs(pymupdf.Rect(info["bbox"]) & page.rect) for info in page.get_image_info())
    return min(covered / area, 1.0)


def _rapid_ocr(page: pymupdf.Page, dpi: int) -> str:
    """RapidOCR on the page rendered at `dpi`; the pixmap stays referenced while it is read."""
    pixmap = page.get_pixmap(dpi=dpi)
    pixels = np.frombuffer(pixmap.samples, dtype=np.uint8).reshape(pixmap.height, pixmap.width, pixmap.n)
    return rapid_ocr.read_image(pixels)


def _ocr(page: pymupdf.Page, dpi: int, *, tessdata: Path, language: str) -> str:
    """Tesseract OCR of the whole rendered page; `page` stays referenced while its text page is read."""
    textpage = page.get_textpage_ocr(language=language, dpi=dpi, full=True, tessdata=str(tessdata))
    try:
        return page.get_text("text", textpage=textpage, sort=True)
    finally:
        del textpage


def _page(number: int, text: str, scanned: bool, ocr_texts: dict[int, str]) -> PageText:
    if not scanned:
        return PageText(number + 1, text)
    if number in ocr_texts:
        return PageText(number + 1, ocr_texts[number], ocr=True)
    return PageText(number + 1, text, needs_ocr=True)


def _summarise(
    pages: tuple[PageText, ...], missing: str, scans: Sequence[int], failures: dict[int, str], *, ocr_available: bool
) -> PageTexts:
    total = len(pages)
    reasons: list[str] = []
    if scans and not ocr_available:
        reasons.append(f"{_count(len(scans), total)} no text layer and {missing}")
    if failures:
        listed = ", ".join(str(n + 1) for n in sorted(failures))
        reasons.append(f"OCR failed on page {listed} ({next(iter(failures.values()))})")
    if not reasons and not any(page.text.strip() for page in pages):
        reasons.append(
            "no readable text was found on any page, even with OCR" if scans else "the document has no text on any page"
        )
    return PageTexts(pages=pages, needs_ocr=bool(reasons), reason="; ".join(reasons) or None)


def _first_line(exc: Exception) -> str:
    """`code=3: Tesseract language initialisation failed` -> `Tesseract language ...`."""
    line = (str(exc).splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^code=\d+:\s*", "", line) or type(exc).__name__


def _count(n: int, total: int) -> str:
    return f"{n} of {total} {'page' if total == 1 else 'pages'} {'has' if n == 1 else 'have'}"
