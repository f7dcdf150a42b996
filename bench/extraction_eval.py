"""Precision, recall and F1 of the offline Clinical Context Agent on the evaluation set.

The sets are `tests/fixtures/documents/eval/` (`--set eval`, the default: the documents the rules
were written on) and `tests/fixtures/documents/heldout/` (`--set heldout`: documents of other
specialities written after the rules, see bench/README.md for the figures before and after the
fixes they showed), `tests/fixtures/documents/heldout2/`, `heldout3/` and `heldout4/` (`--set heldout2`,
`--set heldout3`, `--set heldout4`: each written after the changes before it and scored once before any change for
it, see bench/README.md): synthetic documents (`*.txt`, pages separated by form feeds) and
`expected.json`, what a correct extraction finds in each. Per field it counts true
positives, false positives and false negatives over all documents (micro-averaged):

- conditions (ICD-10-CM codes), medications (generic names), allergies (substances), and the three
  together ("clinical", the issue's headline figure);
- labs: a lab counts only with its value (within 1 %) and its canonical unit;
- studies; procedure: right in the documents that recommend one, and invented where none is.

Prints a table, then as its last line one JSON object with every figure. No database, no network.

    .venv/bin/python bench/extraction_eval.py [--set eval|heldout|heldout2|heldout3|heldout4|DIR] [--misses]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.extraction.offline import extract_text  # noqa: E402
from app.extraction.schemas import Extraction  # noqa: E402

EVAL_SET = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "documents" / "eval"
HELDOUT_SET = EVAL_SET.parent / "heldout"
HELDOUT2_SET = EVAL_SET.parent / "heldout2"
HELDOUT3_SET = EVAL_SET.parent / "heldout3"
HELDOUT4_SET = EVAL_SET.parent / "heldout4"
SETS = {
    "eval": EVAL_SET,
    "heldout": HELDOUT_SET,
    "heldout2": HELDOUT2_SET,
    "heldout3": HELDOUT3_SET,
    "heldout4": HELDOUT4_SET,
}
SET_FIELDS = ("conditions", "medications", "allergies", "studies")
CLINICAL = ("conditions", "medications", "allergies")
LAB_TOLERANCE = 0.01


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, found: set[Any], wanted: set[Any]) -> None:
        self.tp += len(found & wanted)
        self.fp += len(found - wanted)
        self.fn += len(wanted - found)

    def figures(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": round(precision, 3),
            "recall": round(recall, 3),
            "f1": round(f1, 3),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def found_sets(extraction: Extraction) -> dict[str, set[str]]:
    return {
        "conditions": {c.code for c in extraction.conditions},
        "medications": {m.name for m in extraction.medications},
        "allergies": {a.substance for a in extraction.allergies},
        "studies": {s.name for s in extraction.studies},
    }


def lab_matches(found: Iterable[tuple[str, float, str]], wanted: list[list[Any]]) -> tuple[int, int]:
    """(wanted labs found with value and unit, found labs not wanted)."""
    found = list(found)
    hits = sum(
        1
        for name, value, unit in wanted
        if any(
            n == name and u == unit and math.isclose(v, value, rel_tol=LAB_TOLERANCE, abs_tol=1e-9) for n, v, u in found
        )
    )
    return hits, len(found) - hits


def evaluate(directory: Path, misses: bool) -> dict[str, Any]:
    expected = json.loads((directory / "expected.json").read_text(encoding="utf-8"))
    scores = {field: Score() for field in (*SET_FIELDS, "clinical")}
    labs = {"wanted": 0, "found": 0, "right": 0}
    procedure = {"recommended": 0, "right": 0, "invented": 0}
    names = sorted(name for name in expected if not name.startswith("_"))
    for name in names:
        want = expected[name]
        pages = (directory / name).read_text(encoding="utf-8").split("\f")
        extraction = extract_text(pages)
        _score_document(name, want, extraction, scores, labs, procedure, misses)
    return _summary(len(names), scores, labs, procedure)


def _score_document(
    name: str,
    want: dict[str, Any],
    extraction: Extraction,
    scores: dict[str, Score],
    labs: dict[str, int],
    procedure: dict[str, int],
    misses: bool,
) -> None:
    found = found_sets(extraction)
    for field in SET_FIELDS:
        wanted = set(want[field])
        scores[field].add(found[field], wanted)
        if field in CLINICAL:
            scores["clinical"].add({(field, x) for x in found[field]}, {(field, x) for x in wanted})
        if misses and found[field] != wanted:
            print(f"  {name} {field}: missing {sorted(wanted - found[field])}, extra {sorted(found[field] - wanted)}")
    right, extra = lab_matches(((lab.name, lab.value, lab.unit) for lab in extraction.labs), want["labs"])
    labs["wanted"] += len(want["labs"])
    labs["found"] += len(extraction.labs)
    labs["right"] += right
    if misses and (right < len(want["labs"]) or extra):
        print(f"  {name} labs: {right}/{len(want['labs'])} right, {extra} extra; found {extraction.labs}")
    wanted_procedure, got = want["recommended_procedure"], extraction.recommended_procedure
    procedure["recommended"] += wanted_procedure is not None
    procedure["right"] += wanted_procedure is not None and got == wanted_procedure
    procedure["invented"] += wanted_procedure is None and got is not None
    if misses and got != wanted_procedure:
        print(f"  {name} procedure: wanted {wanted_procedure!r}, got {got!r}")


def _summary(
    documents: int, scores: dict[str, Score], labs: dict[str, int], procedure: dict[str, int]
) -> dict[str, Any]:
    return {
        "documents": documents,
        **{field: score.figures() for field, score in scores.items()},
        "labs": {
            "recall": round(labs["right"] / labs["wanted"], 3) if labs["wanted"] else 1.0,
            "precision": round(labs["right"] / labs["found"], 3) if labs["found"] else 1.0,
            **labs,
        },
        "procedure": {
            **procedure,
            "accuracy": round(procedure["right"] / procedure["recommended"], 3) if procedure["recommended"] else 1.0,
        },
    }


def print_table(result: dict[str, Any]) -> None:
    print(f"{result['documents']} documents")
    print(f"{'field':<12} {'precision':>9} {'recall':>7} {'F1':>6}   tp/fp/fn")
    for field in (*SET_FIELDS, "clinical"):
        f = result[field]
        print(f"{field:<12} {f['precision']:>9.3f} {f['recall']:>7.3f} {f['f1']:>6.3f}   {f['tp']}/{f['fp']}/{f['fn']}")
    labs, proc = result["labs"], result["procedure"]
    print(
        f"{'labs':<12} {labs['precision']:>9.3f} {labs['recall']:>7.3f}          {labs['right']} of {labs['wanted']} "
        "with value and unit"
    )
    print(
        f"procedure    right in {proc['right']} of {proc['recommended']} that recommend one, "
        f"invented in {proc['invented']}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        default="eval",
        help="eval (the set the rules were written on), heldout (documents written after them, then used "
        "to fix general patterns), heldout2, heldout3 and heldout4 (each written after the changes before it; see bench/README.md for their first, held-out figures), or a directory "
        "with *.txt and expected.json",
    )
    parser.add_argument("--misses", action="store_true", help="print each document's misses and extras")
    args = parser.parse_args(argv)
    result = evaluate(SETS.get(args.set) or Path(args.set), args.misses)
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
