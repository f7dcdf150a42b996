"""Conditions with ICD-10-CM codes, from three sources in one document:

1. codes the document states ("(ICD-10 I25.10)", "CIE-10: E11.9", a bare "(M17.11)");
2. vocabulary terms ("Essential hypertension", "Diabetes mellitus Typ 2", "hipotiroidismo"), made more
   specific by a modifier next to them ("poorly controlled" type 2 diabetes -> E11.65);
3. site-coded terms: a condition plus the body site and side in its sentence ("osteoarthritis of the
   right knee" -> M17.11, "Gonarthrose links" -> M17.12, "lumbar radiculopathy" -> M54.16), made
   more specific by a modifier next to them like terms ("lumbar stenosis with neurogenic
   claudication" -> M48.062);
4. fragility fractures: a fracture with an osteoporotic cue in its sentence or the next ("fragility
   fracture of the left distal radius", "fracture vertebrale osteoporotique de T12", "femur boyun
   kirigi. Osteoporoz zemininde") is coded as the tabular list's osteoporosis with current
   pathological fracture, M80.0- by site and side, initial encounter (the ICD-10-CM convention: not
   M81.- plus a traumatic S-code; M81.- then goes by its Excludes1 note), or its history code when
   the fracture is past.

A combination code never replaces a code the document states on the strength of a term found
elsewhere (the document's own coding wins). A site-coded term gives way to a code the document
states in the same category anywhere (the document's own coding is more specific: "disc
extrusion" next to a stated M51.17); other terms only to one stated in their sentence.
Invariants: negated, family-history, hypothetical (suspected, rule-out, differential) and
prophylaxis mentions give nothing, resolved ones only their history code if they have one ("old
MI" I25.2, "personal history of pulmonary embolism" Z86.711), and a past procedure that leaves
an implant its status code ("s/p right TKA" Z96.651, "CABG 2015" Z95.1); a term-derived code is
dropped when its sentence states an explicit code of the same ICD-10 category (the document's
own coding is more specific); a laboratory report yields only codes it states explicitly - lab
values, reference ranges and interpretive comments are not diagnoses. Every code returned is
billable in the ICD-10-CM tabular list: a BMI next to an obesity diagnosis adds its Z68 code;
stated codes are made valid and as specific as their sentence supports, and the document's codes
together follow the list's rules (`icd10.coherent_codes`)."""

from __future__ import annotations

import re
from typing import NamedTuple

from app.extraction.context import (
    NOT_CURRENT_SECTIONS,
    PRE_WINDOW,
    about_family,
    asserted,
    context_of,
    diagnosed,
    near_cue,
    nearest,
)
from app.extraction.document import Document
from app.extraction.icd10 import Combination, billable_code, coherent_codes, description
from app.extraction.schemas import Condition
from app.extraction.status import bmi_code, long_term_codes, pattern_codes, pregnancy_codes
from app.extraction.studies import historical
from app.extraction.vocabulary import CONTEXT_KINDS, Hit, Vocabulary, trigger_cue

ICD10_CM = re.compile(r"[A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?")
_LABEL = re.compile(r"(?i:\b[il1]cd[ -]*(?:10|x)(?:[ -]*(?:cm|gm))?|\bci[ed][ -]*10|\bicd)[ ]*(?:code)?[ ]*[:#]?[ ]*")
_CODE = re.compile(r"([A-TV-Z][0-9][0-9AB](?:\.[0-9A-TV-Z]{1,4})?)(?![A-Za-z0-9])")
_MORE = re.compile(r"[ ]*(?:,|/|;|\band\b|\bund\b|\bet\b|\by\b|\bve\b)[ ]*")
_BARE = re.compile(r"\([ ]*([A-TV-Z][0-9][0-9AB]\.[0-9A-TV-Z]{1,4})[ ]*\)")
_CONTEXT_WORD = re.compile(r"[a-z0-9]+")
_DISPLAY_JUNK = re.compile(r"^[\s\-\d.)]*|[\s,:;(\-]*$")
SITE_WINDOW = 60
SIDE_WINDOW = 30
CODE_HEAD = 25
MODIFIER_BEFORE = 25
MODIFIER_AFTER = 55
FRACTURE_REACHES = (8, 20, 40)
REACTION_REACH = 40


class _Found(NamedTuple):
    start: int
    end: int
    code: str
    display: str
    rule: str


def extract_conditions(
    doc: Document, vocabulary: Vocabulary, *, lab_report: bool, drugs: frozenset[str] = frozenset()
) -> list[Condition]:
    """Conditions in document order, one per code; `drugs` are the current medications (for the
    long-term drug therapy codes)."""
    explicit = _explicit(doc, vocabulary)
    derived = [] if lab_report else _derived(doc, vocabulary, explicit)
    combinations, absorbed = _respect_stated({f.code for f in explicit}, derived, vocabulary.combinations)
    first: dict[str, _Found] = {}
    for found in sorted(explicit + [f for f in derived if f.code not in absorbed], key=lambda f: f.start):
        first.setdefault(found.code, found)
    codes = coherent_codes(list(first), combinations, vocabulary.integral_symptoms)
    codes = _past_malignancies(doc, vocabulary, codes, first)
    if not lab_report:
        bmi = bmi_code(doc.text, codes)
        supplementary = [(bmi, "bmi")] if bmi else []
        supplementary += [(found, "status-pattern") for found in pattern_codes(doc, vocabulary, codes)]
        supplementary += [(found, "long-term-therapy") for found in long_term_codes(doc, vocabulary, set(drugs))]
        for (code, start, end), rule in supplementary:
            if code not in codes:
                first[code] = _Found(start, end, code, _display(code, vocabulary), rule)
                codes.append(code)
        for code, accompanied, start, end in pregnancy_codes(doc, vocabulary, codes):
            if code not in codes:
                at = first.get(accompanied) if accompanied else None  # an O99 code is read where its condition is
                span = (at.start, at.end) if at else (start, end)
                first[code] = _Found(*span, code, _display(code, vocabulary), "pregnancy")
                codes.insert(codes.index(accompanied) if accompanied else len(codes), code)
    return [_condition(doc, vocabulary, code, first) for code in codes]


def _derived(doc: Document, vocabulary: Vocabulary, explicit: list[_Found]) -> list[_Found]:
    """Term and site-term codes, minus those a stated code of their category makes redundant."""
    stated = {(doc.sentence(f.start), f.code[:3]) for f in explicit}
    stated_categories = {f.code[:3] for f in explicit}
    terms = [f for f in _terms(doc, vocabulary) if (doc.sentence(f.start), f.code[:3]) not in stated]
    sited = _site_terms(doc, vocabulary) + _fragility_fractures(doc, vocabulary)
    return terms + [f for f in sited if f.code[:3] not in stated_categories]


def _respect_stated(
    stated: set[str], derived: list[_Found], combinations: list[Combination]
) -> tuple[list[Combination], set[str]]:
    """The combinations that may apply, and the derived codes to leave out: a combination would
    replace a code the document states with the help of a derived part ("I25.10" stated, "angina"
    in the history) does not apply, and its derived parts it would replace are left out."""
    allowed, absorbed = [], set()
    for combination in combinations:
        derived_parts = {f.code for f in derived if f.code not in stated and f.code.startswith(combination.when)}
        if derived_parts and any(code.startswith(combination.replaces) for code in stated):
            absorbed |= {code for code in derived_parts if code.startswith(combination.replaces)}
            continue
        allowed.append(combination)
    return allowed, absorbed


def _condition(doc: Document, vocabulary: Vocabulary, code: str, first: dict[str, _Found]) -> Condition:
    """The condition with its provenance: its own mention, or the first part a combination replaced."""
    found = first.get(code) or _combined_from(code, first, vocabulary)
    if found is None:
        return Condition(code=code, display=_display(code, vocabulary))
    own = found.code == code
    provenance = doc.provenance(found.start, found.end, found.rule if own else "combination")
    return Condition(code=code, display=found.display if own else _display(code, vocabulary), provenance=provenance)


def _combined_from(code: str, first: dict[str, _Found], vocabulary: Vocabulary) -> _Found | None:
    for combination in vocabulary.combinations:
        if combination.code == code:
            parts = [f for f in first.values() if f.code.startswith(combination.replaces)]
            if parts:
                return min(parts, key=lambda f: f.start)
    return None


def _display(code: str, vocabulary: Vocabulary) -> str:
    return vocabulary.displays.get(code) or description(code)


def _explicit(doc: Document, vocabulary: Vocabulary) -> list[_Found]:
    found = []
    for start, stated in _stated_codes(doc.text):
        if _code_not_current(doc, start, start + len(stated)) or about_family(doc, start):
            continue
        s0, s1 = doc.sentence(start)
        code = billable_code(stated, doc.text[s0:s1])
        if code is None:
            continue
        from_text = code == stated and _display_from_text(doc, start)
        display = vocabulary.displays.get(code) or from_text or description(code)
        found.append(_Found(start, start + len(stated), code, display, "stated-code"))
    return found


def _code_not_current(doc: Document, start: int, end: int) -> bool:
    """A stated code is not a current diagnosis when a trigger opens its phrase ("Ruled out: ...",
    "V.a. ..."), follows it closely, or it stands in a family-history or differential section."""
    if doc.section(start) in NOT_CURRENT_SECTIONS:
        return True
    s0, s1 = doc.sentence(start)
    return any(
        doc.cues(trigger_cue(kind, "before"), s0, min(start, s0 + CODE_HEAD))
        or doc.cues(trigger_cue(kind, "after"), end, min(s1, end + CODE_HEAD))
        for kind in CONTEXT_KINDS
    )


def _stated_codes(text: str) -> list[tuple[int, str]]:
    codes = []
    for label in _LABEL.finditer(text):
        pos = label.end()
        while m := _CODE.match(text, pos):
            codes.append((m.start(), m.group(1)))
            sep = _MORE.match(text, m.end())
            if not sep or sep.end() == m.end():
                break
            pos = sep.end()
    seen = {start for start, _ in codes}
    codes += [(m.start(1), m.group(1)) for m in _BARE.finditer(text) if m.start(1) not in seen]
    return codes


def _display_from_text(doc: Document, start: int) -> str:
    line_start = doc.text.rfind("\n", 0, start) + 1
    before = doc.text[line_start:start]
    before = _LABEL.sub("", before.split("(")[0] if "(" in before else before)
    return _DISPLAY_JUNK.sub("", before).strip()


def _terms(doc: Document, vocabulary: Vocabulary) -> list[_Found]:
    found = []
    for hit in doc.found("condition"):
        if hit.key and diagnosed(doc, hit) and not _a_reaction(doc, hit) and not _treated_by_past_procedure(doc, hit):
            code = _modified(doc, vocabulary, hit)
            found.append(_Found(hit.start, hit.end, code, _display(code, vocabulary), "vocabulary-term"))
    return found + _history_terms(doc, vocabulary) + _implant_terms(doc, vocabulary)


def _treated_by_past_procedure(doc: Document, hit: Hit) -> bool:
    """A condition named inside a past procedure's name ("2021'de katarakt ameliyati", "s/p hernia
    repair") was treated by it: not a current diagnosis."""
    return any(
        p.start <= hit.start and hit.end <= p.end and historical(doc, p)
        for p in doc.within("procedure", hit.start - 60, hit.end + 60)
        if p.key
    )


def _a_reaction(doc: Document, hit: Hit) -> bool:
    """A condition word that is an allergy's reaction ("Allergies: penicillin (urticaria)", "allergy
    to latex (hives)"): a reaction word in the allergies section or in a sentence about an allergy."""
    reactions = doc.within("reaction", hit.start - REACTION_REACH, hit.end + REACTION_REACH)
    if not any(r.start <= hit.start and hit.end <= r.end for r in reactions):  # "latex (contact dermatitis)"
        return False
    s0, s1 = doc.sentence(hit.start)
    return doc.section(hit.start) == "allergies" or bool(doc.cues("allergy", s0, s1))


def _implant_terms(doc: Document, vocabulary: Vocabulary) -> list[_Found]:
    """Status codes of past procedures that leave an implant ("underwent a right TKA" -> Z96.651)."""
    found = []
    for hit in doc.found("procedure"):
        codes = vocabulary.procedure_status_codes.get(hit.key or "")
        if not codes or not historical(doc, hit) or not asserted(doc, hit) or about_family(doc, hit.start):
            continue
        code = codes.get("*") or codes.get(_side(doc, hit, False)) or codes["unspecified"]
        found.append(_Found(hit.start, hit.end, code, _display(code, vocabulary), "procedure-history"))
    return found


def _modified(doc: Document, vocabulary: Vocabulary, hit: Hit, code: str | None = None) -> str:
    """The term's code, made specific by the modifiers next to it ("poorly controlled" -> E11.65;
    "crónica agudizada con fracción de eyección reducida" -> I50.20 -> I50.23)."""
    code = code or hit.key or ""
    for cue, codes in vocabulary.modifiers.items():  # in order, so they chain: reduced EF, then acute on chronic
        if code in codes and _modifies(doc, cue, hit):
            code = codes[code]
    return code


def _modifies(doc: Document, cue: str, hit: Hit) -> bool:
    """A modifier cue next to the hit with no other condition between them, and not the modifier
    of the condition right after it ("diabetes and uncontrolled hypertension")."""
    s0, s1 = doc.sentence(hit.start)
    for before in doc.cues(cue, max(s0, hit.start - MODIFIER_BEFORE), hit.start):
        if not doc.within("condition", before.end, hit.start):
            return True
    for after in doc.cues(cue, hit.end, min(s1, hit.end + MODIFIER_AFTER)):
        between = doc.within("condition", hit.end, after.start)
        next_condition = any(
            after.end <= h.start <= after.end + 2 and not doc.text[after.end : h.start].strip()
            for h in doc.found("condition")
        )  # "evre 3a, diyabetik retinopati": the comma ends the modifier's reach
        if not between and not next_condition:
            return True
    return False


def _past_malignancies(doc: Document, vocabulary: Vocabulary, codes: list[str], first: dict[str, _Found]) -> list[str]:
    """A malignancy the document says has not recurred ("sin evidencia de recidiva del adenocarcinoma
    de colon", "in complete remission") is coded by its personal-history code (Z85.-), wherever it is
    named: the guideline's "excised or eradicated, no evidence of any existing malignancy"."""
    past: dict[str, Hit] = {}
    for hit in doc.found("site_condition"):
        s0, s1 = doc.sentence(hit.start)
        code = _site_code(doc, vocabulary, hit) if (hit.key or "").partition("@")[0] == "malignancy" else None
        if code and doc.cues("no_recurrence", s0, s1) and not about_family(doc, hit.start):
            past.setdefault(code[:3], hit)
    kept: list[str] = []
    for code in codes:
        history = vocabulary.history_codes.get(code[:3]) if code[:3] in past else None
        if history is None:
            kept.append(code)
        elif history not in kept:
            hit = past[code[:3]]
            first[history] = _Found(hit.start, hit.end, history, _display(history, vocabulary), "history-code")
            kept.append(history)
    for category, hit in past.items():  # named only in the past ("TUR-B 2018, seither rezidivfrei")
        history = vocabulary.history_codes.get(category)
        if history and history not in kept:
            first[history] = _Found(hit.start, hit.end, history, _display(history, vocabulary), "history-code")
            kept.append(history)
    return kept


def _history_terms(doc: Document, vocabulary: Vocabulary) -> list[_Found]:
    """Past conditions that have a status code ("MI in 2015, resolved" -> I25.2 old MI, "breast
    cancer treated in 2015, no recurrence" -> Z85.3): the code's own entry, else its category's."""
    found = []
    mentions = [(hit, hit.key or "") for hit in doc.found("condition")]
    mentions += [(hit, _site_code(doc, vocabulary, hit) or "") for hit in doc.found("site_condition")]
    for hit, condition in mentions:
        code = vocabulary.history_codes.get(condition) or vocabulary.history_codes.get(condition[:3])
        if code and context_of(doc, hit.start, hit.end) == "resolved" and not about_family(doc, hit.start):
            found.append(_Found(hit.start, hit.end, code, _display(code, vocabulary), "history-code"))
    return found


def _site_terms(doc: Document, vocabulary: Vocabulary) -> list[_Found]:
    found = []
    for hit in doc.found("site_condition"):
        if not diagnosed(doc, hit):
            continue
        code = _site_code(doc, vocabulary, hit)
        if code:
            code = _modified(doc, vocabulary, hit, code)
            found.append(_Found(hit.start, hit.end, code, _display(code, vocabulary), "site-term"))
    return found


def _fragility_fractures(doc: Document, vocabulary: Vocabulary) -> list[_Found]:
    """Osteoporotic fractures: M80.0- by the site and side named nearest to them, or the history
    code; an unspecified site only when no fracture of the document has a site."""
    spec, found = vocabulary.fragility_fracture, []
    for hit in doc.found("fracture"):
        s0, s1 = doc.sentence(hit.start)
        _, next_end = doc.sentence(s1 + 1) if s1 < len(doc.text) else (s1, s1)
        if not doc.cues("fragility", s0, next_end) or about_family(doc, hit.start):
            continue
        context = context_of(doc, hit.start, hit.end)
        if context == "resolved":
            code: str | None = spec["history"]
        elif context is None and not near_cue(doc, "not_diagnosis_before", hit, PRE_WINDOW, 0):
            code = _fracture_code(doc, vocabulary, hit, spec["tabular"])
        else:
            continue
        if code:
            found.append(_Found(hit.start, hit.end, code, _display(code, vocabulary), "fragility-fracture"))
    return [f for f in found if not _less_specific_fracture(f.code, {g.code for g in found}, spec["tabular"])]


def _less_specific_fracture(code: str, codes: set[str], category: str) -> bool:
    """An unspecified site next to a named one, an unspecified side next to a side of that site."""
    if code == billable_code(category):
        return any(c.startswith(category) and c != code for c in codes)
    return "unspecified" in description(code) and any(c[:6] == code[:6] and c != code for c in codes)


def _fracture_code(doc: Document, vocabulary: Vocabulary, hit: Hit, category: str) -> str | None:
    """The code of the site named closest to the fracture: words within a growing reach, then the sentence."""
    side, default = _side(doc, hit, False), billable_code(category)
    for reach in FRACTURE_REACHES:
        code = _tabular_code(doc, vocabulary, hit, category, side, reach)
        if code != default:
            return code
    return default


def _site_code(doc: Document, vocabulary: Vocabulary, hit: Hit) -> str | None:
    """The code for a site-coded condition, from its own site (compound) or the nearest site word."""
    condition_id, _, fixed_site = (hit.key or "").partition("@")
    spec = vocabulary.site_conditions[condition_id]
    site_hit = None if fixed_site else _nearest_site(doc, hit, spec.codes)
    site = fixed_site or (site_hit.key.rstrip("*") if site_hit and site_hit.key else "*")
    sides = spec.codes.get(site)
    if sides is None:
        return None
    if "*" in sides:
        return sides["*"]
    plural = bool(site_hit and site_hit.key and site_hit.key.endswith("*"))
    side = _side(doc, site_hit or hit, plural)
    if "tabular" in sides:
        return _tabular_code(doc, vocabulary, hit, sides["tabular"], side) or sides.get("unspecified")
    return sides.get(side) or sides.get("unspecified")


def _tabular_code(
    doc: Document, vocabulary: Vocabulary, hit: Hit, category: str, side: str, reach: int | None = None
) -> str | None:
    """The billable code under `category` that the sentence supports, walking the tabular list down
    by the words of each child's description ("upper outer quadrant" -> C50.4-, "left" -> C50.412).
    Words in the supported languages are put in the list's English first (`tabular_words`), and
    the side and the patient's sex are added as the list writes them. `reach` limits the words to
    those up to that many characters from the hit (default: its whole sentence)."""
    s0, s1 = doc.sentence(hit.start)
    if reach is not None:
        s0, s1 = max(s0, hit.start - reach), min(s1, hit.end + reach)
    words = _CONTEXT_WORD.findall(doc.text[s0:s1].lower())
    english = [vocabulary.tabular_words.get(word, word) for word in words]
    sides = [side] if side != "unspecified" else []
    context = " ".join([*english, *sides, *_sex(doc)])
    return billable_code(category, context)


def _sex(doc: Document) -> list[str]:
    """ "female" or "male" when the document's words say which (first mention wins), else nothing."""
    hits = doc.found("sex")
    return [hits[0].key] if hits and hits[0].key else []


def _nearest_site(doc: Document, hit: Hit, codes: dict[str, dict[str, str]]) -> Hit | None:
    site = nearest(doc, "site", hit, SITE_WINDOW)
    return site if site and site.key and site.key.rstrip("*") in codes else None


def _side(doc: Document, anchor: Hit, plural: bool) -> str:
    """right / left / bilateral near the anchor; plural sites ("knees") are bilateral."""
    s0, s1 = doc.sentence(anchor.start)
    lo, hi = max(s0, anchor.start - SIDE_WINDOW), min(s1, anchor.end + SIDE_WINDOW)
    sides = {h.key for h in doc.within("side", lo, hi)}
    if "bilateral" in sides or {"right", "left"} <= sides or (plural and not sides):
        return "bilateral"
    if len(sides) == 1:
        return sides.pop() or "unspecified"
    side = nearest(doc, "side", anchor, SIDE_WINDOW)
    return side.key if side and side.key else "unspecified"
