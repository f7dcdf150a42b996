"""Outside parties as real local HTTP servers: an OpenAI-compatible LLM and an embeddings API."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@dataclass
class FakeLLM:
    """Answers chat completions with `answer` (a JSON-able dict) after `failures` 500s."""

    answer: dict[str, Any]
    failures: int = 0
    requests: int = 0

    def app(self) -> Starlette:
        async def completions(request: Request) -> JSONResponse:
            self.requests += 1
            await request.json()
            if self.requests <= self.failures:
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
            message = {"role": "assistant", "content": json.dumps(self.answer)}
            return JSONResponse(
                {
                    "id": "cmpl-1",
                    "object": "chat.completion",
                    "model": "fake",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500},
                }
            )

        return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def hash_vector(text: str, dim: int = 64) -> list[float]:
    """A deterministic unit vector for `text` (bag of hashed words)."""
    vector = [0.0] * dim
    for word in text.lower().split():
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % dim] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


@dataclass
class FakeEmbeddings:
    """An OpenAI-compatible `/v1/embeddings`; the first request can be made to hang."""

    hang_first: bool = False
    requests: int = 0
    hanging: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def embeddings(request: Request) -> JSONResponse:
            self.requests += 1
            body = await request.json()
            if self.hang_first and self.requests == 1:
                self.hanging.set()
                await asyncio.sleep(3600)
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = [{"object": "embedding", "index": i, "embedding": hash_vector(t)} for i, t in enumerate(texts)]
            return JSONResponse({"object": "list", "data": data, "model": body.get("model", "fake")})

        return Starlette(routes=[Route("/v1/embeddings", embeddings, methods=["POST"])])
