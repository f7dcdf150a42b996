"""Requirement matching with the real local model: the acceptance case and its edges."""

from __future__ import annotations

from typing import Any

import pytest

from app.matching import Fact, LocalEmbedder, MatchMethod, MatchStatus, RequirementMatch, match_requirements
from app.procedures import get_procedure

THRESHOLD = 0.5
DOC = "doc_cardiology_discharge"

# The "discharge_summary_cardiology.pdf" entry of shared/fixtures/documents/expected.json.
CARDIOLOGY_EXTRACTION: dict[str, Any] = {
    "conditions": ["I25.10", "E11.9", "I10", "E78.5"],
    "medications": ["aspirin", "atorvastatin", "metoprolol", "metformin", "ramipril"],
    "labs": [["hemoglobin", 13.2, "g/dL"], ["hba1c", 7.4, "%"], ["creatinine", 1.1, "mg/dL"],
             ["ldl cholesterol", 142, "mg/dL"], ["platelets", 245, "10*9/L"], ["inr", 1.0, ""]],
    "studies": ["coronary angiography", "echocardiogram", "ecg"],
    "recommended_procedure": "coronary artery bypass grafting",
}
CONDITION_NAMES = {"I25.10": "Coronary artery disease", "E11.9": "Type 2 diabetes mellitus",
                   "I10": "Essential hypertension", "E78.5": "Hyperlipidemia"}


def cardiology_facts(document_id: str = DOC) -> list[Fact]:
    extraction = CARDIOLOGY_EXTRACTION
    facts = [Fact(document_id=document_id, kind="study", name=s) for s in extraction["studies"]]
    facts += [Fact(document_id=document_id, kind="lab", name=n, value=v, unit=u) for n, v, u in extraction["labs"]]
    facts += [Fact(document_id=document_id, kind="condition", name=CONDITION_NAMES[c], snippet=c)
              for c in extraction["conditions"]]
    facts += [Fact(document_id=document_id, kind="medication", name=m) for m in extraction["medications"]]
    facts.append(Fact(document_id=document_id, kind="text", name="page 1",
                      snippet="Transthoracic echocardiogram (2026-02-04): left ventricular ejection fraction 45%"))
    return facts


def by_code(results: list[RequirementMatch]) -> dict[str, RequirementMatch]:
    return {r.requirement.code: r for r in results}


async def match(procedure: str, facts: list[Fact], embedder: LocalEmbedder | None) -> dict[str, RequirementMatch]:
    return by_code(await match_requirements(get_procedure(procedure), facts, embedder, THRESHOLD))


async def test_cardiology_discharge_summary_satisfies_the_core_cabg_requirements(local_embedder: LocalEmbedder) -> None:
    results = await match("cabg", cardiology_facts(), local_embedder)
    for code in ("coronary_angiogram", "echocardiogram", "ecg", "hba1c", "creatinine"):
        assert results[code].status is MatchStatus.SATISFIED, code
        assert results[code].evidence[0].document_id == DOC
        assert results[code].evidence[0].score == 1.0
    assert results["hba1c"].evidence[0].snippet == "hba1c 7.4 %"
    assert results["fbc"].status is MatchStatus.SATISFIED  # haemoglobin and platelets
    assert results["coagulation"].status is MatchStatus.SATISFIED  # INR
    missing = {code for code, r in results.items() if r.status is MatchStatus.MISSING}
    assert missing == {"chest_xray", "cardiology_letter"}
    assert all(not results[code].evidence for code in missing)


async def test_the_page_heading_and_recommended_procedure_leave_only_the_chest_xray_missing(
    local_embedder: LocalEmbedder,
) -> None:
    heading = ("CITY GENERAL HOSPITAL - DEPARTMENT OF CARDIOLOGY DISCHARGE SUMMARY Patient: Arjun Test-Patient "
               "(synthetic) DOB: 1961-03-14 Sex: Male")
    facts = cardiology_facts() + [
        Fact(document_id=DOC, kind="text", name=heading[:80], snippet=heading),
        Fact(document_id=DOC, kind="procedure", name=CARDIOLOGY_EXTRACTION["recommended_procedure"]),
    ]
    results = await match("cabg", facts, local_embedder)
    assert results["cardiology_letter"].evidence[0].snippet == heading
    assert {c for c, r in results.items() if r.status is MatchStatus.MISSING} == {"chest_xray"}
    assert [e.fact for e in results["coronary_angiogram"].evidence] == ["coronary angiography"]


async def test_a_recommended_procedure_is_not_evidence_of_a_study(local_embedder: LocalEmbedder) -> None:
    for procedure, name, study in [
        ("cabg", "coronary artery bypass grafting", "coronary_angiogram"),
        ("tka", "total knee arthroplasty", "knee_xray"),
        ("tha", "total hip arthroplasty", "hip_xray"),
    ]:
        results = await match(procedure, [Fact(document_id="d", kind="procedure", name=name)], local_embedder)
        assert results[study].status is MatchStatus.MISSING, (procedure, results[study].evidence)


async def test_results_follow_the_procedure_order_and_repeat_exactly(local_embedder: LocalEmbedder) -> None:
    cabg = get_procedure("cabg")
    first = await match_requirements(cabg, cardiology_facts(), local_embedder, THRESHOLD)
    second = await match_requirements(cabg, list(reversed(cardiology_facts())), local_embedder, THRESHOLD)
    assert [r.requirement.code for r in first] == [r.code for r in cabg.requirements]
    assert [r.model_dump() for r in first] == [r.model_dump() for r in second]


async def test_synonyms_and_non_english_terms_match_exactly(local_embedder: LocalEmbedder) -> None:
    facts = [
        Fact(document_id="de", kind="study", name="Echokardiographie"),
        Fact(document_id="uk", kind="lab", name="Haemoglobin A1c", value=6.1, unit="%"),
        Fact(document_id="us", kind="study", name="EKG"),
        Fact(document_id="es", kind="lab", name="Creatinina", value=0.9, unit="mg/dL"),
        Fact(document_id="fr", kind="study", name="Coronarographie"),
    ]
    results = await match("cabg", facts, local_embedder)
    expected = {"echocardiogram": "de", "hba1c": "uk", "ecg": "us", "creatinine": "es", "coronary_angiogram": "fr"}
    for code, document_id in expected.items():
        assert results[code].status is MatchStatus.SATISFIED, code
        assert [(e.document_id, e.method) for e in results[code].evidence] == [(document_id, MatchMethod.EXACT)]


async def test_unlisted_variants_match_by_embedding_similarity(local_embedder: LocalEmbedder) -> None:
    facts = [
        Fact(document_id="d1", kind="study", name="echocardiographic study"),
        Fact(document_id="d2", kind="lab", name="Kreatininwert", value=1.0, unit="mg/dL"),
        Fact(document_id="d3", kind="lab", name="glycosylated Hb", value=6.8, unit="%"),
        Fact(document_id="d4", kind="study", name="PA and lateral chest radiographs"),
    ]
    results = await match("cabg", facts, local_embedder)
    for code in ("echocardiogram", "creatinine", "hba1c", "chest_xray"):
        evidence = results[code].evidence
        assert results[code].status is MatchStatus.SATISFIED, code
        assert evidence[0].method is MatchMethod.EMBEDDING and THRESHOLD <= evidence[0].score < 1.0


async def test_unrelated_facts_satisfy_nothing(local_embedder: LocalEmbedder) -> None:
    facts = [
        Fact(document_id="knee", kind="study", name="mri knee"),
        Fact(document_id="knee", kind="study", name="knee radiograph"),
        Fact(document_id="other", kind="study", name="abdominal ultrasound"),
        Fact(document_id="other", kind="study", name="CT coronary calcium score"),
        Fact(document_id="other", kind="lab", name="potassium", value=4.2, unit="mmol/L"),
        Fact(document_id="other", kind="lab", name="ALT", value=31, unit="U/L"),
        Fact(document_id="other", kind="condition", name="Primary osteoarthritis of knee"),
    ]
    results = await match("cabg", facts, local_embedder)
    assert all(r.status is MatchStatus.MISSING for r in results.values()), {
        c: r.evidence for c, r in results.items() if r.evidence
    }


async def test_a_knee_mri_is_not_taken_for_the_knee_xray_a_knee_replacement_needs(
    local_embedder: LocalEmbedder,
) -> None:
    results = await match("tka", [Fact(document_id="knee", kind="study", name="MRI right knee")], local_embedder)
    assert results["knee_xray"].status is MatchStatus.MISSING


async def test_a_lab_requirement_needs_a_lab_fact_with_a_value(local_embedder: LocalEmbedder) -> None:
    facts = [
        Fact(document_id="a", kind="lab", name="HbA1c"),  # no value
        Fact(document_id="b", kind="text", name="page", snippet="HbA1c 7.4 %"),  # text, not a lab fact
        Fact(document_id="c", kind="study", name="creatinine"),  # wrong kind
    ]
    results = await match("cabg", facts, local_embedder)
    assert results["hba1c"].status is MatchStatus.MISSING
    assert results["creatinine"].status is MatchStatus.MISSING


async def test_hba1c_never_counts_as_a_blood_count(local_embedder: LocalEmbedder) -> None:
    facts = [Fact(document_id="lab", kind="lab", name="haemoglobin A1c", value=5.4, unit="%")]
    results = await match("cabg", facts, local_embedder)
    assert results["hba1c"].status is MatchStatus.SATISFIED
    assert results["fbc"].status is MatchStatus.MISSING


async def test_negated_or_planned_mentions_in_text_do_not_satisfy(local_embedder: LocalEmbedder) -> None:
    facts = [
        Fact(document_id="p1", kind="text", name="page 1", snippet="No echocardiogram available at this time."),
        Fact(document_id="p1", kind="text", name="page 1", snippet="Chest X-ray requested prior to surgery."),
    ]
    results = await match("cabg", facts, local_embedder)
    assert results["echocardiogram"].status is MatchStatus.MISSING
    assert results["chest_xray"].status is MatchStatus.MISSING


async def test_a_text_snippet_can_satisfy_a_study(local_embedder: LocalEmbedder) -> None:
    snippet = "Chest radiograph: clear lung fields, normal cardiac silhouette."
    results = await match("cabg", [Fact(document_id="p2", kind="text", name="page 2", snippet=snippet)], local_embedder)
    assert results["chest_xray"].status is MatchStatus.SATISFIED
    assert results["chest_xray"].evidence[0].snippet == snippet


async def test_evidence_is_deduplicated_and_sorted_by_score(local_embedder: LocalEmbedder) -> None:
    facts = [
        Fact(document_id="b", kind="study", name="echocardiographic study"),
        Fact(document_id="a", kind="study", name="echocardiogram"),
        Fact(document_id="a", kind="study", name="echocardiogram"),
        Fact(document_id="c", kind="study", name="TTE"),
    ]
    evidence = (await match("cabg", facts, local_embedder))["echocardiogram"].evidence
    assert [(e.document_id, e.snippet) for e in evidence] == [("a", "echocardiogram"), ("c", "TTE"),
                                                               ("b", "echocardiographic study")]
    assert [e.score for e in evidence] == sorted((e.score for e in evidence), reverse=True)


async def test_without_an_embedder_only_exact_matches_count() -> None:
    facts = [Fact(document_id="d", kind="study", name="EKG"), Fact(document_id="d", kind="study", name="Herzecho")]
    results = await match("cabg", facts, None)
    assert results["ecg"].status is MatchStatus.SATISFIED
    assert results["echocardiogram"].status is MatchStatus.MISSING


async def test_requirement_vectors_are_computed_once_per_embedder(local_embedder: LocalEmbedder) -> None:
    class Counting:
        def __init__(self) -> None:
            self.texts: list[str] = []

        async def embed(self, texts: list[str]) -> list[list[float]]:
            self.texts.extend(texts)
            return await local_embedder.embed(texts)

    counting = Counting()
    facts = [Fact(document_id="d", kind="study", name="Herzecho")]
    await match("cabg", facts, counting)
    first = len(counting.texts)
    await match("cabg", facts, counting)
    await match("tka", facts, counting)
    assert first > 100 and len(counting.texts) == first + 2  # only the fact, twice


async def test_a_threshold_outside_zero_to_one_is_refused(local_embedder: LocalEmbedder) -> None:
    with pytest.raises(ValueError, match="threshold"):
        await match_requirements(get_procedure("cabg"), [], local_embedder, 1.5)
