"""Match a procedure's requirements against the facts found in a case's documents.

`match_requirements(procedure, facts, embedder, threshold)` returns one `RequirementMatch` per
requirement, in the procedure's order. The rules, in order:

1. Kinds must fit: a study is met by a study, procedure or text fact; a lab only by a lab fact
   that has a value; a letter by a letter or text fact; an "other" requirement by any fact.
2. Exact/synonym match (score 1.0): the fact names the requirement or one of its synonyms
   (app.matching.lexical). A fact may exactly match several requirements.
3. Embedding match, only for facts that matched nothing exactly (and, for text, only snippets
   without a negation or plan cue): the fact's text is compared (cosine) with the name and every
   synonym of every requirement the catalog knows: the procedure's own first, then the rest of
   the library, including reference entries such as "MRI of the knee", and the catalog's
   procedures themselves. A requirement's score is the best of its terms. The fact means its
   single most similar fitting meaning; it supports that requirement when the procedure has it
   and the score reaches `threshold`. So "HbA1c" never also counts as a blood count, a knee
   radiograph is recognised as a knee X-ray and never taken for a chest X-ray, a knee MRI is never
   evidence for an echocardiogram, and a recommended "coronary artery bypass grafting" is never
   taken for a coronary angiogram.
4. A requirement is `satisfied` when it has evidence. Evidence is deduplicated per
   (document, snippet), sorted by score (then document and snippet), at most `MAX_EVIDENCE`.

Deterministic: same facts, same embedder, same result; scores are rounded to 4 places.
Requirement-term vectors are computed once per embedder and cached (`warm_up` does it ahead of
time; two first calls racing may both compute them, harmlessly); fact vectors are never cached
(they are patient data). With `embedder=None` only rules 1, 2 and 4 apply.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from app.matching.embeddings import Embedder
from app.matching.lexical import has_negation, name_contains, name_equals, phrase_keys, term_keys, text_mentions
from app.matching.schemas import Evidence, Fact, FactKind, MatchMethod, MatchStatus, RequirementMatch, RequirementRef
from app.procedures.catalog import Catalog, default_catalog
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


def names_exactly(requirement: Requirement, fact: Fact) -> bool:
    """Rule 2: the fact names the requirement or one of its synonyms."""
    phrases = phrase_keys(requirement.terms)
    if fact.kind is FactKind.TEXT:
        return text_mentions(fact.snippet or fact.name, phrases)
    if name_equals(fact.name, term_keys(requirement.terms)):
        return True
    return fact.kind is not FactKind.LAB and name_contains(fact.name, phrases)


@dataclass(frozen=True)
class _TermIndex:
    """The embedded terms of a sequence of requirements: rows grouped by requirement."""

    matrix: np.ndarray  # (terms, dim), unit rows
    starts: np.ndarray  # first row of each requirement, in order

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(facts, requirements): each fact's best cosine with each requirement's terms."""
        return np.maximum.reduceat(vectors @ self.matrix.T, self.starts, axis=1)


@dataclass
class _EmbedderCache:
    vectors: dict[str, list[float]]  # requirement term -> vector (never patient data)
    indexes: dict[tuple[Requirement, ...], _TermIndex]


_caches: weakref.WeakKeyDictionary[object, _EmbedderCache] = weakref.WeakKeyDictionary()


def _cache_for(embedder: Embedder) -> _EmbedderCache:
    try:
        return _caches.setdefault(embedder, _EmbedderCache({}, {}))
    except TypeError:  # an embedder that cannot be weakly referenced: no caching
        return _EmbedderCache({}, {})


async def term_index(requirements: tuple[Requirement, ...], embedder: Embedder) -> _TermIndex:
    """The requirements' embedded terms for this embedder, computed once then cached."""
    cache = _cache_for(embedder)
    if requirements not in cache.indexes:
        texts = [term for r in requirements for term in r.terms]
        missing = [t for t in dict.fromkeys(texts) if t not in cache.vectors]
        if missing:
            cache.vectors.update(zip(missing, await embedder.embed(missing), strict=True))
        starts = np.cumsum([0] + [len(r.terms) for r in requirements[:-1]])
        matrix = np.asarray([cache.vectors[t] for t in texts], dtype=np.float64)
        cache.indexes[requirements] = _TermIndex(matrix=matrix, starts=starts)
    return cache.indexes[requirements]


@lru_cache(maxsize=256)
def meanings(procedure: Procedure, catalog: Catalog) -> tuple[Requirement, ...]:
    """What a fact may mean: the procedure's requirements first, then every other requirement
    the catalog knows, then the procedures themselves (so "total knee arthroplasty", the
    recommended treatment, is recognised as that and never taken for the knee X-ray)."""
    own = {r.code for r in procedure.requirements}
    others = tuple(r for r in catalog.requirements() if r.code not in own)
    treatments = tuple(
        Requirement(
            code=f"procedure_{p.code}", name=p.name, kind=RequirementKind.OTHER, description=p.description,
            synonyms=p.aliases,
        )
        for p in catalog.all()
    )
    return procedure.requirements + others + treatments


async def warm_up(embedder: Embedder, catalog: Catalog | None = None) -> None:
    """Embed every requirement term of the catalog now (e.g. at startup) instead of lazily."""
    catalog = catalog or default_catalog()
    for procedure in catalog.all():
        await term_index(meanings(procedure, catalog), embedder)


def _evidence(fact: Fact, score: float, method: MatchMethod) -> Evidence:
    return Evidence(
        document_id=fact.document_id,
        snippet=fact.display()[:MAX_SNIPPET_CHARS],
        score=round(min(max(score, 0.0), 1.0), 4),
        fact=fact.name,
        method=method,
    )


async def _embedding_evidence(
    procedure: Procedure, catalog: Catalog, facts: list[Fact], embedder: Embedder, threshold: float
) -> list[tuple[int, Evidence]]:
    """Rule 3 for `facts` (none of which matched exactly): (requirement index, evidence)."""
    labels = meanings(procedure, catalog)
    index = await term_index(labels, embedder)
    texts = [(f.snippet or f.name if f.kind is FactKind.TEXT else f.name)[:MAX_EMBED_CHARS] for f in facts]
    scores = index.scores(np.asarray(await embedder.embed(texts), dtype=np.float64))
    found: list[tuple[int, Evidence]] = []
    for row, fact in enumerate(facts):
        allowed = np.array([fits(label, fact) for label in labels])
        masked = np.where(allowed, scores[row], -np.inf)
        best = int(np.argmax(masked))  # first of equals, and the procedure's own come first
        if best < len(procedure.requirements) and allowed[best] and masked[best] >= threshold:
            found.append((best, _evidence(fact, float(masked[best]), MatchMethod.EMBEDDING)))
    return found


def _embeddable(fact: Fact) -> bool:
    """Text that negates or merely plans something ("no echo", "X-ray requested") is never
    matched by similarity, which cannot tell the two apart."""
    return fact.kind is not FactKind.TEXT or not has_negation(fact.snippet or fact.name)


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
    procedure: Procedure,
    facts: Sequence[Fact],
    embedder: Embedder | None,
    threshold: float,
    *,
    catalog: Catalog | None = None,
) -> list[RequirementMatch]:
    """Each requirement of `procedure`, satisfied or missing, with the evidence from `facts`.

    `catalog` (default: the packaged one) supplies the other requirements a fact may mean."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    requirements = procedure.requirements
    evidence: list[list[Evidence]] = [[] for _ in requirements]
    unmatched: list[Fact] = []
    for fact in facts:
        hit = False
        for i, requirement in enumerate(requirements):
            if fits(requirement, fact) and names_exactly(requirement, fact):
                evidence[i].append(_evidence(fact, 1.0, MatchMethod.EXACT))
                hit = True
        if not hit and _embeddable(fact) and any(fits(r, fact) for r in requirements):
            unmatched.append(fact)
    if embedder is not None and unmatched:
        found = await _embedding_evidence(procedure, catalog or default_catalog(), unmatched, embedder, threshold)
        for i, item in found:
            evidence[i].append(item)
    return [_result(r, e) for r, e in zip(requirements, evidence, strict=True)]
