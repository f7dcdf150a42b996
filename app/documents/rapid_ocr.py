"""OCR with RapidOCR (`rapidocr-onnxruntime`): Python packages only, models inside the wheel, offline.

`read_image` takes a rendered page (an RGB/RGBA/gray pixel array) and returns its text, line by line
in reading order. RapidOCR's raw text runs Latin words together ("lowbackpainradiatingtoleftleg")
and may emit full-width punctuation ("，"); both are normalised here: spaces are put back where the
gap between two recognised characters is wider than `SPACE_GAP` times the line's median character
width, and NFKC folds full-width forms to ASCII. Pieces on the same visual line are joined with
`COLUMN_GAP` (as Tesseract's text output separates columns).

The engine (about 0.2-0.7 s to load) is built on first use and kept for the process; `available()`
says whether the package is installed. Calls hold `_LOCK`: one page at a time per process.
"""

from __future__ import annotations

import threading
import unicodedata
from functools import lru_cache
from importlib.util import find_spec
from typing import Any

import numpy as np

SPACE_GAP = 0.45
COLUMN_GAP = "   "
_LOCK = threading.Lock()


def available() -> bool:
    """True when `rapidocr-onnxruntime` is installed."""
    return find_spec("rapidocr_onnxruntime") is not None


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR  # imported on first use: it loads onnxruntime and opencv

    return RapidOCR()


def read_image(pixels: np.ndarray) -> str:
    """The text of a page image, one line of text per visual line."""
    with _LOCK:
        result, _ = _engine()(_rgb(pixels), return_word_box=True)
    pieces = [_Piece.from_result(item) for item in result or []]
    return "\n".join(COLUMN_GAP.join(p.text for p in line) for line in _lines(pieces))


def normalise(text: str) -> str:
    """Full-width and compatibility forms folded (NFKC): "，" -> ",", "：" -> ":"."""
    return unicodedata.normalize("NFKC", text)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, :3])
    return pixels


class _Piece:
    """One recognised text box: its text (spaces restored) and vertical/horizontal position."""

    def __init__(self, text: str, left: float, top: float, bottom: float) -> None:
        self.text, self.left, self.top, self.bottom = text, left, top, bottom

    @classmethod
    def from_result(cls, item: list[Any]) -> _Piece:
        box, text = item[0], item[1]
        if len(item) > 4 and item[4]:
            text = _spaced(item[3], item[4])
        xs, ys = [point[0] for point in box], [point[1] for point in box]
        return cls(normalise(text).strip(), min(xs), min(ys), max(ys))

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


def _spaced(boxes: list[Any], chars: list[str]) -> str:
    """Characters joined, with a space wherever the gap between two of them is a word gap."""
    if len(boxes) != len(chars):
        return "".join(chars)
    widths = sorted(box[1][0] - box[0][0] for box, ch in zip(boxes, chars, strict=True) if ch.strip())
    if not widths:
        return "".join(chars)
    threshold = SPACE_GAP * widths[len(widths) // 2]
    out = [chars[0]]
    for i in range(1, len(chars)):
        if chars[i - 1].strip() and chars[i].strip() and boxes[i][0][0] - boxes[i - 1][1][0] > threshold:
            out.append(" ")
        out.append(chars[i])
    return "".join(out)


def _lines(pieces: list[_Piece]) -> list[list[_Piece]]:
    """Pieces grouped into visual lines (middles within half a line height), top to bottom."""
    lines: list[list[_Piece]] = []
    for piece in sorted(pieces, key=lambda p: p.middle):
        last = lines[-1] if lines else None
        if last and abs(piece.middle - last[0].middle) < (last[0].bottom - last[0].top) / 2:
            last.append(piece)
        else:
            lines.append([piece])
    return [sorted(line, key=lambda p: p.left) for line in lines if any(p.text for p in line)]
