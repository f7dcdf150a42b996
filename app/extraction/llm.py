"""The LLM Clinical Context Agent, for any OpenAI-compatible `POST {base_url}/chat/completions`.

It asks for structured output (`response_format` = the strict `Extraction` JSON schema), reads
`choices[0].message.content`, and canonicalises the answer through the vocabulary, so its names
are the offline agent's names; each fact's provenance is its first mention in the pages
(`provenance.locate`, rule `llm:<model>`), none where the pages do not mention it.

Failure policy (invariant):
- an unusable answer - not JSON, not the schema, truncated (`finish_reason == "length"`), refused
  or empty - is asked again, up to `max_retries` more times, then `ExtractionError(retryable=False)`
  listing what each attempt returned;
- timeouts, connection errors, 429 and 5xx raise `ExtractionError(retryable=True)` at once: the
  workflow runtime retries the step with backoff (this class never sleeps);
- any other 4xx (bad key, unknown model) raises `ExtractionError(retryable=False)`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from app.extraction.agent import ExtractionError
from app.extraction.canonical import canonicalise
from app.extraction.provenance import locate
from app.extraction.schemas import Extraction, extraction_json_schema
from app.extraction.vocabulary import Vocabulary, default_vocabulary

SCHEMA_NAME = "clinical_extraction"
SYSTEM_PROMPT = """You extract clinical facts from one medical document about one patient.
The document may be in any language; answer in English with lower-case names.
- conditions: diagnoses the patient has now or had (not negated, not ruled out, not family history),
  each with its ICD-10-CM code (e.g. "I25.10") and display name. Do not derive diagnoses from lab
  values, reference ranges or lab comments.
- medications the patient takes: generic name (brand names -> generic), dose (e.g. "75 mg") and
  frequency (e.g. "once daily", "twice daily", "at night") or null.
- allergies: substance and reaction (or null). "No known drug allergies" means none.
- labs: measured results only (never reference ranges): name, numeric value (decimal point), and
  the unit as written, in UCUM where possible ("g/dL", "mg/dL", "%", "10*9/L", "mmol/L"; "" for INR).
  Preferred names: {labs}.
- studies: investigations performed, e.g. "coronary angiography", "echocardiogram", "ecg",
  "mri knee", "knee radiograph", "pelvic x-ray".
- recommended_procedure: the procedure the document recommends or plans (e.g. "total knee
  arthroplasty"), or null.
Answer with JSON matching the schema only."""


@dataclass(frozen=True, slots=True)
class LLMCall:
    """One request to the model, as an observer (tracing) sees it."""

    model: str
    started_at: datetime
    duration_s: float
    status: int | None  # None: no answer (timeout, unreachable)
    input_tokens: int | None
    output_tokens: int | None


class _BadAnswer(Exception):
    """The endpoint answered, but not with a usable extraction."""


class LLMExtractor:
    """Extraction by an OpenAI-compatible chat-completions model; implements `ClinicalContextAgent`."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        http: httpx.AsyncClient,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_input_chars: int = 60_000,
        vocabulary: Vocabulary | None = None,
        on_call: Callable[[LLMCall], None] | None = None,
    ) -> None:
        self._on_call = on_call  # told of every request (Langfuse generations: app/ops/tracing.py)
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._model = model
        self._http = http
        self._timeout = timeout_s
        self._max_retries = max_retries
        self._max_input_chars = max_input_chars
        self._vocabulary = vocabulary or default_vocabulary()

    async def extract(self, pages: list[str]) -> Extraction:
        """Ask the model, retrying unusable answers; see the module docstring for failures."""
        if not self._url.startswith(("http://", "https://")):
            raise ExtractionError(
                f"LLM base URL {self._url.removesuffix('/chat/completions')!r} is not an http(s) URL: "
                "set LLM_BASE_URL (e.g. https://api.openai.com/v1)",
                retryable=False,
            )
        payload = self.request_body(pages)
        problems: list[str] = []
        attempts = self._max_retries + 1
        for attempt in range(1, attempts + 1):
            response = await self._post(payload)
            try:
                extraction = canonicalise(_parse_answer(response), self._vocabulary)
                return locate(extraction, pages, self._vocabulary, f"llm:{self._model}")
            except _BadAnswer as exc:
                problems.append(f"attempt {attempt}: {exc}")
        raise ExtractionError(
            f"LLM model {self._model!r} at {self._url} gave no usable extraction in {attempts} "
            f"attempts ({'; '.join(problems)}). Check the model supports structured output "
            "(json_schema) and has a large enough output limit, or use the offline extractor.",
            retryable=False,
            attempts=attempts,
        )

    def request_body(self, pages: list[str]) -> dict[str, Any]:
        """The chat-completions request for these pages."""
        labs = ", ".join(f"{s.name} ({s.unit or 'no unit'})" for s in self._vocabulary.labs.values())
        return {
            "model": self._model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT.format(labs=labs)},
                {"role": "user", "content": self._document_text(pages)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": extraction_json_schema(), "strict": True},
            },
        }

    def _document_text(self, pages: list[str]) -> str:
        text = "\n\n".join(f"--- page {i} ---\n{page}" for i, page in enumerate(pages, start=1))
        if len(text) > self._max_input_chars:
            text = text[: self._max_input_chars] + "\n[document truncated]"
        return text

    async def _post(self, payload: dict[str, Any]) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        started, began = datetime.now(UTC), time.monotonic()
        response = None
        try:
            response = await self._http.post(self._url, json=payload, headers=headers, timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise ExtractionError(
                f"LLM endpoint {self._url} did not answer within {self._timeout:g} s", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise ExtractionError(f"LLM endpoint {self._url} unreachable: {exc!r}", retryable=True) from exc
        finally:
            self._observe(started, time.monotonic() - began, response)
        _raise_for_status(response, self._url, self._model)
        return response

    def _observe(self, started: datetime, duration_s: float, response: httpx.Response | None) -> None:
        if self._on_call is None:
            return
        usage: dict[str, Any] = {}
        if response is not None and response.is_success:
            try:
                usage = response.json().get("usage") or {}
            except (ValueError, AttributeError):
                usage = {}
        status = None if response is None else response.status_code
        tokens = (usage.get("prompt_tokens"), usage.get("completion_tokens"))
        self._on_call(LLMCall(self._model, started, duration_s, status, *tokens))


def _raise_for_status(response: httpx.Response, url: str, model: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = response.text[:300]
    if status == 429 or status >= 500:
        raise ExtractionError(f"LLM endpoint {url} answered {status} (temporary): {detail}", retryable=True)
    hint = {401: "check the LLM API key", 403: "check the LLM API key's permissions",
            404: "check the LLM base URL and model name"}.get(status, f"check the request for model {model!r}")
    raise ExtractionError(f"LLM endpoint {url} refused the request ({status}): {hint}. {detail}", retryable=False)


def _parse_answer(response: httpx.Response) -> Extraction:
    """The extraction in a chat-completions response; raises `_BadAnswer` if there is none."""
    try:
        body = response.json()
        choice = body["choices"][0]
        message = choice.get("message") or {}
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise _BadAnswer(f"not a chat-completions response ({exc!r})") from exc
    if choice.get("finish_reason") == "length":
        raise _BadAnswer("answer truncated (finish_reason=length)")
    if message.get("refusal"):
        raise _BadAnswer(f"model refused: {str(message['refusal'])[:200]}")
    return _validated(message.get("content"))


def _validated(content: object) -> Extraction:
    if not isinstance(content, str) or not content.strip():
        raise _BadAnswer("empty answer")
    try:
        data = json.loads(_strip_fence(content))
    except json.JSONDecodeError as exc:
        raise _BadAnswer(f"answer is not valid JSON ({exc.msg} at position {exc.pos})") from exc
    required = extraction_json_schema()["required"]
    if not isinstance(data, dict) or any(key not in data for key in required):
        raise _BadAnswer(f"answer is not an object with the keys {', '.join(required)}")
    try:
        return Extraction.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _BadAnswer(f"answer does not match the schema ({where}: {first['msg']})") from exc


def _strip_fence(content: str) -> str:
    """Some models wrap JSON in a ```json fence despite structured output."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text
