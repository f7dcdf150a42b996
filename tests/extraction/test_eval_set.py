"""The evaluation set (issue 14 point 9) is well-formed and the offline agent keeps its figures."""

from __future__ import annotations

import json

import pytest

from app.extraction.icd10 import is_billable
from app.extraction.vocabulary import default_vocabulary
from bench.extraction_eval import EVAL_SET, HELDOUT2_SET, HELDOUT3_SET, HELDOUT4_SET, HELDOUT_SET, evaluate


def test_the_eval_set_has_25_documents_in_six_languages_with_billable_codes() -> None:
    expected = {k: v for k, v in json.loads((EVAL_SET / "expected.json").read_text()).items() if not k.startswith("_")}
    assert len(expected) >= 25
    assert {doc["language"] for doc in expected.values()} == {"en", "es", "de", "fr", "pt", "tr"}
    assert all((EVAL_SET / name).is_file() for name in expected)
    assert all(is_billable(code) for doc in expected.values() for code in doc["conditions"])
    labs = default_vocabulary().labs
    assert all(labs[name].unit == unit for doc in expected.values() for name, _, unit in doc["labs"])


def test_the_offline_agent_keeps_its_figures_on_the_eval_set() -> None:
    result = evaluate(EVAL_SET, misses=False)
    assert result["clinical"]["f1"] >= 0.97
    assert result["labs"]["recall"] >= 0.95
    assert result["procedure"]["invented"] == 0
    assert result["procedure"]["accuracy"] >= 0.9


@pytest.mark.parametrize(
    ("directory", "documents"),
    [(HELDOUT_SET, 13), (HELDOUT2_SET, 6), (HELDOUT3_SET, 10), (HELDOUT4_SET, 6)],
    ids=["heldout", "heldout2", "heldout3", "heldout4"],
)
def test_the_heldout_sets_are_well_formed_in_six_languages_with_billable_codes(directory, documents: int) -> None:
    expected = {k: v for k, v in json.loads((directory / "expected.json").read_text()).items() if not k.startswith("_")}
    assert len(expected) == documents
    assert {doc["language"] for doc in expected.values()} == {"en", "es", "de", "fr", "pt", "tr"}
    assert all((directory / name).is_file() for name in expected)
    assert all(is_billable(code) for doc in expected.values() for code in doc["conditions"])


@pytest.mark.parametrize(
    "directory",
    [HELDOUT_SET, HELDOUT2_SET, HELDOUT3_SET, HELDOUT4_SET],
    ids=["heldout", "heldout2", "heldout3", "heldout4"],
)
def test_the_offline_agent_keeps_its_figures_on_the_heldout_sets(directory) -> None:
    """Floors a little under the figures recorded in bench/README.md (after the fixes each set showed;
    the first, truly held-out run of each is recorded there too)."""
    result = evaluate(directory, misses=False)
    assert result["clinical"]["f1"] >= 0.95
    assert result["conditions"]["precision"] >= 0.95
    assert result["labs"]["recall"] >= 0.95
    assert result["procedure"]["invented"] == 0
    assert result["procedure"]["accuracy"] >= 0.9
