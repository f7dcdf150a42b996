"""Match a procedure's requirements against the facts found in a case's documents.

`match_requirements(procedure, facts, embedder, threshold)` returns one `RequirementMatch` per
requirement, in the procedure's order. The rules, in order:

1. Kinds must fit: a study is met by a study, procedure or text fact; a lab only by a lab fact
   that has a value; a letter by a letter or text fact; an "other" requirement by any fact.
2. Exact/synonym match (score 1.0): the fact names the requirement or one of its synonyms
   (app.matching.lexical). A fact may exactly match several requirements.
3. Embedding match, only for facts that matched nothing exactly: the fact's text is compared
   (cosine) with the requirement's name and every synonym; a requirement's score is the best of
   these. The fact supports only its single most similar fitting requirement, and only when that
   score reaches `threshold`. So "HbA1c" cannot also count as a blood count, and a knee MRI is
   never evidence for an echocardiogram.
4. A requirement is `satisfied` when it has evidence. Evidence is deduplicated per
   (document, snippet), sorted by score (then document and snippet), at most `MAX_EVIDENCE`.

Deterministic: same facts, same embedder, same result; scores are rounded to 4 places.
Requirement-term vectors are computed once per (embedder, procedure) and cached; fact vectors
are not (they are patient data). With `embedder=None` only rules 1, 2 and 4 apply.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.matching.embeddings import Embedder
from app.matching.lexical import name_contains, name_equals, term_keys, text_mentions
from app.matching.schemas import Evidence, Fact, FactKind, MatchMethod, MatchStatus, RequirementMatch, RequirementRef
from app.procedures.schemas import Procedure, Requirement, RequirementKind

MAX_EVIDENCE = 10
MAX_SNIPPET_CHARS = 300
MAX_EMBED_CHARS = 1000

_ALL_KINDS = frozenset(FactKind)
COMPATIBLE: dict[RequirementKind, frozenset[FactKind]] = {
    RequirementKind.STUDY: frozenset({FactKind.STUDY, FactKind.PROCEDURE, FactKind.TEXT}),
    RequirementKind.LAB: frozenset({FactKind.LAB}),
    RequirementKind.LETTER: frozenset({FactKind.LETTER, FactKind.TEXT}),
    RequirementKind.OTHER: _ALL_KINDS,
}


def fits(requirement: Requirement, fact: Fact) -> bool:
    """Whether this kind of fact can ever support this kind of requirement (rule 1)."""
    if fact.kind not in COMPATIBLE[requirement.kind]:
        return False
    return requirement.kind is not RequirementKind.LAB or fact.has_value


def names_exactly(keys: frozenset[str], fact: Fact) -> bool:
    """Rule 2: the fact names one of the requirement's terms (`keys` from `term_keys`)."""
    if fact.kind is FactKind.TEXT:
        return text_mentions(fact.snippet or fact.name, keys)
    if name_equals(fact.name, keys):
        return True
    return fact.kind is not FactKind.LAB and name_contains(fact.name, keys)


@dataclass(frozen=True)
class _TermIndex:
    """All requirement terms of one procedure, embedded: rows grouped by requirement."""

    matrix: np.ndarray  # (terms, dim), unit rows
    starts: np.ndarray  # first row of each requirement, in requirement order

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(facts, requirements): each fact's best cosine with each requirement's terms."""
        return np.maximum.reduceat(vectors @ self.matrix.T, self.starts, axis=1)


_indexes: weakref.WeakKeyDictionary[object, dict[Procedure, _TermIndex]] = weakref.WeakKeyDictionary()


async def term_index(procedure: Procedure, embedder: Embedder) -> _TermIndex:
    """The procedure's embedded terms for this embedder, computed on first use then cached."""
    try:
        cache = _indexes.setdefault(embedder, {})
    except TypeError:  # an embedder that cannot be weakly referenced: no caching
        cache = {}
    if procedure not in cache:
        texts = [term for r in procedure.requirements for term in r.terms]
        matrix = np.asarray(await embedder.embed(texts), dtype=np.float64)
        starts, row = [], 0
        for requirement in procedure.requirements:
            starts.append(row)
            row += len(requirement.terms)
        cache[procedure] = _TermIndex(matrix=matrix, starts=np.asarray(starts))
    return cache[procedure]


def _evidence(fact: Fact, score: float, method: MatchMethod) -> Evidence:
    return Evidence(
        document_id=fact.document_id,
        snippet=fact.display()[:MAX_SNIPPET_CHARS],
        score=round(min(max(score, 0.0), 1.0), 4),
        fact=fact.name,
        method=method,
    )


async def _embedding_evidence(
    procedure: Procedure, facts: list[Fact], embedder: Embedder, threshold: float
) -> list[tuple[int, Evidence]]:
    """Rule 3 for `facts` (none of which matched exactly): (requirement index, evidence)."""
    index = await term_index(procedure, embedder)
    texts = [(f.snippet or f.name if f.kind is FactKind.TEXT else f.name)[:MAX_EMBED_CHARS] for f in facts]
    vectors = np.asarray(await embedder.embed(texts), dtype=np.float64)
    scores = index.scores(vectors)
    found: list[tuple[int, Evidence]] = []
    for row, fact in enumerate(facts):
        allowed = np.array([fits(r, fact) for r in procedure.requirements])
        masked = np.where(allowed, scores[row], -np.inf)
        best = int(np.argmax(masked))  # first of equals: deterministic
        if allowed[best] and masked[best] >= threshold:
            found.append((best, _evidence(fact, float(masked[best]), MatchMethod.EMBEDDING)))
    return found


def _result(requirement: Requirement, evidence: list[Evidence]) -> RequirementMatch:
    best: dict[tuple[str, str], Evidence] = {}
    for item in evidence:
        key = (item.document_id, item.snippet)
        if key not in best or item.score > best[key].score:
            best[key] = item
    ranked = sorted(best.values(), key=lambda e: (-e.score, e.document_id, e.snippet))[:MAX_EVIDENCE]
    return RequirementMatch(
        requirement=RequirementRef(code=requirement.code, name=requirement.name),
        status=MatchStatus.SATISFIED if ranked else MatchStatus.MISSING,
        evidence=ranked,
    )


async def match_requirements(
    procedure: Procedure, facts: Sequence[Fact], embedder: Embedder | None, threshold: float
) -> list[RequirementMatch]:
    """Each requirement of `procedure`, satisfied or missing, with the evidence from `facts`."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    requirements = procedure.requirements
    evidence: list[list[Evidence]] = [[] for _ in requirements]
    unmatched: list[Fact] = []
    for fact in facts:
        hit = False
        for i, requirement in enumerate(requirements):
            if fits(requirement, fact) and names_exactly(term_keys(requirement.terms), fact):
                evidence[i].append(_evidence(fact, 1.0, MatchMethod.EXACT))
                hit = True
        if not hit and any(fits(r, fact) for r in requirements):
            unmatched.append(fact)
    if embedder is not None and unmatched:
        for i, item in await _embedding_evidence(procedure, unmatched, embedder, threshold):
            evidence[i].append(item)
    return [_result(r, e) for r, e in zip(requirements, evidence)]
