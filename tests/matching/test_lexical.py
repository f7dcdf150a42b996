"""Normalisation and exact/synonym matching on text."""

from __future__ import annotations

from app.matching.lexical import (
    has_negation,
    name_contains,
    name_equals,
    normalise,
    phrase_keys,
    term_keys,
    text_mentions,
)


def test_normalise_folds_case_accents_and_punctuation() -> None:
    assert normalise("Échocardiographie") == "echocardiographie"
    assert normalise("Röntgen-Thorax") == "rontgen thorax"
    assert normalise("  PT/INR ") == "pt inr"
    assert normalise("Chest X-ray") == normalise("chest x ray")


def test_names_equal_after_dropping_filler_words() -> None:
    keys = term_keys(("Creatinine", "eGFR"))
    assert name_equals("Serum creatinine level", keys)
    assert not name_equals("creatinine clearance", keys)


def test_containment_needs_whole_words_and_the_whole_term() -> None:
    keys = phrase_keys(("echo", "ECG", "cardiology report"))
    assert name_contains("Transthoracic echo (TTE)", keys)
    assert not name_contains("echogenic liver", keys)
    assert not name_contains("cardiology clinic letter", keys)  # "report" is a filler only for equality


def test_text_mentions_ignore_negated_or_planned_terms() -> None:
    keys = phrase_keys(("chest x-ray", "echocardiogram"))
    assert text_mentions("Chest X-ray: clear lung fields.", keys)
    assert not text_mentions("No echocardiogram available.", keys)
    assert not text_mentions("Chest X-ray requested before surgery.", keys)
    assert text_mentions("No fever. Findings of the chest x-ray were normal.", keys)


def test_has_negation_spots_cues_anywhere() -> None:
    assert has_negation("ECG pending")
    assert not has_negation("ECG: sinus rhythm 72 bpm")
