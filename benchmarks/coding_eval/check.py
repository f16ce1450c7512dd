#!/usr/bin/env python3
"""Validate the blind clinical-coding evaluation set (stdlib only).

Usage:  python benchmarks/coding_eval/check.py [--stats] [SET_DIR]

SET_DIR (default: this file's directory) is the set to validate, e.g.
benchmarks/coding_holdout.

Checks
  * inline PHI markup ``{{TYPE|text}}`` parses: balanced braces, known TYPE,
    non-empty text, no nesting;
  * every note listed in gold.json has a file in notes/ and vice versa;
  * gold fields: language/style agree with the file name, 2-8 gold codes,
    >= 2 not_codes with a known reason, no code both gold and not_code,
    billed == (codes - planted_missing) | planted_unsupported,
    planted_unsupported & codes == {}, planted_missing <= codes,
    unsupported_why covers exactly planted_unsupported;
  * every code has ICD-10-CM shape; when ``simple_icd_10_cm`` is importable,
    every gold / not / billed code is a valid code and every gold and billed
    code is a billable leaf;
  * ID spans: Chilean RUT check digit, Spanish DNI/NIE control letter,
    Mexican CURP check digit, US SSN ranges, NPI Luhn check;
  * AGE spans are > 89; PHONE / EMAIL / DATE / NAME spans look like what they
    claim (no titles or credentials inside NAME spans);
  * heuristics on the plain text: untagged dates, e-mails, phone numbers and
    ages over 89 outside any span (errors); name tokens that occur again
    outside a NAME span (warnings);
  * note length 150-450 words (plain text); both languages cover all styles.

Exit status 0 when no error was found (warnings do not fail).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NOTES = HERE / "notes"
GOLD = HERE / "gold.json"

TYPES = {"NAME", "DATE", "RECORD_NUMBER", "PHONE", "ID", "EMAIL", "ADDRESS", "AGE"}
REASONS = {"negated", "ruled_out", "family", "uncertain"}
WHY = REASONS | {
    "wrong_stage",
    "wrong_laterality",
    "wrong_site",
    "wrong_diabetes_type",
    "wrong_specificity",
    "wrong_severity",
    "wrong_code",
    "not_documented",
}
STYLES = {
    "ed": "ed",
    "urg": "ed",
    "dc": "discharge",
    "alta": "discharge",
    "wound": "wound",
    "enf": "wound",
    "op": "outpatient",
    "cons": "outpatient",
}
EN_KINDS = {"ed", "dc", "wound", "op"}
NOTE_ID = re.compile(r"^(en|es)-(ed|dc|wound|op|urg|alta|enf|cons)-\d{2}$")
LIST_FIELDS = ("codes", "not_codes", "billed", "planted_unsupported", "planted_missing")

SPAN = re.compile(r"\{\{([A-Z_]+)\|([^{}|]*)\}\}")
ICD = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")

Span = tuple[int, int, str, str]

errors: list[str] = []
warnings: list[str] = []


def err(msg: str) -> None:
    errors.append(msg)


def warn(msg: str) -> None:
    warnings.append(msg)


# --------------------------------------------------------------------------- markup
def parse(text: str, where: str = "") -> tuple[str, list[Span]]:
    """Strip the markup. Returns (plain_text, [(start, end, TYPE, text), ...])."""
    out: list[str] = []
    spans: list[Span] = []
    pos = 0
    plain_len = 0
    for m in SPAN.finditer(text):
        chunk = text[pos : m.start()]
        out.append(chunk)
        plain_len += len(chunk)
        typ, val = m.group(1), m.group(2)
        if typ not in TYPES:
            err(f"{where}: unknown TYPE {typ!r} in {m.group(0)!r}")
        if not val.strip() or val != val.strip():
            err(f"{where}: empty or padded span text in {m.group(0)!r}")
        spans.append((plain_len, plain_len + len(val), typ, val))
        out.append(val)
        plain_len += len(val)
        pos = m.end()
    out.append(text[pos:])
    plain = "".join(out)
    for tok in ("{{", "}}"):
        at = plain.find(tok)
        if at >= 0:
            err(f"{where}: unbalanced or malformed markup near {plain[max(0, at - 30) : at + 30]!r}")
    if "{" in plain or "}" in plain:
        err(f"{where}: stray brace in plain text")
    return plain, spans


# --------------------------------------------------------------------------- ids
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
CURP_ALPHA = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ"
CURP_RE = re.compile(r"[A-Z][AEIOUX][A-Z]{2}\d{6}[HM][A-Z]{2}[B-DF-HJ-NP-TV-Z]{3}[0-9A-Z]\d")
RUT_RE = re.compile(r"(\d{1,2})\.?(\d{3})\.?(\d{3})-([\dkK])")


def rut_ok(s: str) -> bool:
    m = RUT_RE.fullmatch(s)
    if not m:
        return False
    body = "".join(m.groups()[:3])
    total, mul = 0, 2
    for d in reversed(body):
        total += int(d) * mul
        mul = 2 if mul == 7 else mul + 1
    r = 11 - total % 11
    return {11: "0", 10: "K"}.get(r, str(r)) == m.group(4).upper()


def dni_es_ok(s: str) -> bool:
    m = re.fullmatch(r"(\d{8})([A-Z])", s.upper())
    return bool(m) and DNI_LETTERS[int(m.group(1)) % 23] == m.group(2)


def nie_ok(s: str) -> bool:
    m = re.fullmatch(r"([XYZ])(\d{7})([A-Z])", s.upper())
    if not m:
        return False
    num = int(str("XYZ".index(m.group(1))) + m.group(2))
    return DNI_LETTERS[num % 23] == m.group(3)


def curp_ok(s: str) -> bool:
    if not CURP_RE.fullmatch(s):
        return False
    total = sum(CURP_ALPHA.index(ch) * (18 - i) for i, ch in enumerate(s[:17]))
    return str((10 - total % 10) % 10) == s[17]


def ssn_ok(s: str) -> bool:
    a, g, n = s.split("-")
    return a not in ("000", "666") and not a.startswith("9") and g != "00" and n != "0000"


def npi_ok(s: str) -> bool:
    if not re.fullmatch(r"[12]\d{9}", s):
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + s[:-1])):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10) == s[-1]


# (shape of the value, label that must precede it or "", validator, what is wrong)
ID_RULES: list[tuple[str, str, Callable[[str], bool], str]] = [
    (r"\d{1,2}\.?\d{3}\.?\d{3}-[\dkK]", "", rut_ok, "RUT with a wrong check digit"),
    (r"\d{8}[A-Za-z]", "", dni_es_ok, "Spanish DNI with a wrong letter"),
    (r"[XYZxyz]\d{7}[A-Za-z]", "", nie_ok, "NIE with a wrong letter"),
    (r"[A-Z0-9]{18}", "", curp_ok, "CURP malformed or with a wrong check digit"),
    (r"\d{3}-\d{2}-\d{4}", "", ssn_ok, "SSN with an impossible area/group/serial"),
    (r"\d{10}", "NPI", npi_ok, "NPI failing the Luhn check"),
]
# a label right before the span that requires one of the shapes above
LABEL_SHAPES = {
    "RUT": r"\d{1,2}\.?\d{3}\.?\d{3}-[\dkK]",
    "CURP": r"[A-Z0-9]{18}",
    # Peru: 8 digits; Spain: 8 digits + letter; Argentina: 7-8 digits with dots (22.914.603)
    "DNI": r"\d{8}[A-Za-z]?|\d{1,2}\.\d{3}\.\d{3}",
    # Colombian cedula de ciudadania: 6-10 digits, usually with thousands dots
    "C.C.": r"\d{1,3}(?:\.\d{3}){1,3}|\d{6,10}",
}


def check_id(where: str, val: str, before: str) -> None:
    label = before[-15:].upper()  # the label just before the span ("RUT: ", "NPI ", ...)
    for shape, need, ok, what in ID_RULES:
        if re.fullmatch(shape, val) and (not need or need in label):
            if not ok(val):
                err(f"{where}: {val} is a {what}")
            return
    for lab, shape in LABEL_SHAPES.items():
        if re.search(rf"\b{re.escape(lab)}(?!\w)", label) and not re.fullmatch(shape, val):
            err(f"{where}: {lab} {val} does not have the {lab} format")


# --------------------------------------------------------------------------- span shapes
TITLE_RE = re.compile(r"(?i)^(dr|dra|mr|mrs|ms|sr|sra|srta|lic|enf)\.?\s")
CRED_RE = re.compile(r"(?i),?\s+(md|do|rn|lpn|pa-c|np|bsn|msn|dpm|cwocn|cwon|cws)$")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def check_span(nid: str, plain: str, span: Span) -> None:
    s, e, t, v = span
    where = f"{nid}[{s}:{e}]"
    if t == "AGE" and (not v.isdigit() or int(v) <= 89):
        err(f"{where}: AGE span {v!r} is not an age over 89")
    elif t == "EMAIL" and not EMAIL_RE.fullmatch(v):
        err(f"{where}: EMAIL span {v!r} is not an e-mail")
    elif t == "PHONE" and len(re.sub(r"\D", "", v)) < 9:
        err(f"{where}: PHONE span {v!r} has too few digits")
    elif t == "DATE" and not re.search(r"\d", v):
        err(f"{where}: DATE span {v!r} has no digit")
    elif t == "ID":
        check_id(where, v, plain[:s])
    elif t == "NAME" and (TITLE_RE.match(v) or CRED_RE.search(v)):
        err(f"{where}: NAME span {v!r} includes a title or credential")


# --------------------------------------------------------------------------- heuristics on plain text
MONTHS_EN = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
MONTHS_ES = (
    r"(?:ene(?:ro)?|feb(?:rero)?|mar(?:zo)?|abr(?:il)?|mayo?|jun(?:io)?|jul(?:io)?|ago(?:sto)?"
    r"|sep(?:t(?:iembre)?)?|set(?:iembre)?|oct(?:ubre)?|nov(?:iembre)?|dic(?:iembre)?)"
)
YEAR = r"(?:19|20)\d{2}"
DATE_PATTERNS = [
    re.compile(r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b"),
    re.compile(rf"\b{YEAR}-\d{{2}}-\d{{2}}\b"),
    re.compile(rf"\b{MONTHS_EN}\.?\s+\d{{1,2}},?\s+{YEAR}\b"),
    re.compile(rf"\b\d{{1,2}}\s+{MONTHS_EN}\.?\s+{YEAR}\b"),
    re.compile(rf"\b\d{{1,2}}\s+de\s+{MONTHS_ES}\s+(?:del?\s+)?{YEAR}\b", re.I),
    re.compile(rf"\b\d{{1,2}}-{MONTHS_ES}-(?:19|20)?\d{{2}}\b", re.I),
    re.compile(rf"\b{MONTHS_ES}\s+\d{{1,2}},?\s+{YEAR}\b", re.I),
]
SHORT_DATE = re.compile(r"\b\d{1,2}/\d{1,2}\b")
PHONE_PATTERNS = [
    re.compile(r"\+\d{1,3}[\s(]+\d[\d\s()-]{6,}\d"),
    re.compile(r"\(\d{2,3}\)\s?\d{3,4}-\d{4}"),
    re.compile(r"\b\d{3}[-.]\d{3}[-.]\d{4}\b"),
    re.compile(r"\b[6-9]\d{2}\s\d{2,3}\s\d{2,3}(?:\s\d{2,3})?\b"),
]
AGE_PATTERNS = [
    re.compile(r"\b(\d{2,3})\s*(?:-?\s*(?:years?|yrs?)(?:[\s-]old)?|y/?o\b|y\.o\.|yo\b|años)", re.I),
    re.compile(r"\b(?:Age|Edad)\s*:?\s*(\d{2,3})\b", re.I),
]
NOT_DATE_BEFORE = re.compile(r"(?i)(?:BP|PA|TA|pain|EVA|\bHR\b|/min|x\s*$)")
NOT_DATE_AFTER = re.compile(r"\s*(?:mmHg|cm|mg|%|L|ml|mL|UI|u\b)")
NAME_STOP = {"Santa", "Clara", "Mercy", "Maria"}


def overlaps(spans: list[Span], s: int, e: int) -> bool:
    return any(a < e and s < b for a, b, _t, _v in spans)


def plausible_date(text: str) -> bool:
    nums = [int(x) for x in re.findall(r"\d+", text)]
    if len(nums) < 2 or nums[0] >= 1000:
        return True
    a, b = nums[0], nums[1]
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= a <= 31 and 1 <= b <= 12)


def check_dates(nid: str, plain: str, spans: list[Span]) -> None:
    for pat in DATE_PATTERNS:
        for m in pat.finditer(plain):
            if overlaps(spans, m.start(), m.end()):
                continue
            before = plain[max(0, m.start() - 12) : m.start()]
            if NOT_DATE_BEFORE.search(before) or NOT_DATE_AFTER.match(plain, m.end()):
                continue
            if plausible_date(m.group(0)):  # "24-0-12" insulin doses, "1-0-1" schedules
                err(f"{nid}: untagged date-like text {m.group(0)!r}")
    for m in SHORT_DATE.finditer(plain):
        if overlaps(spans, m.start(), m.end()) or not plausible_date(m.group(0)):
            continue
        line_start = plain.rfind("\n", 0, m.start()) + 1
        line = plain[line_start : plain.find("\n", m.end())]
        if re.search(r"(?i)admit|ingres|\bon\s+\d|\bel\s+\d", line) and not re.search(
            r"(?i)/10\b|score|sites|puntos|RBC|mg|mcg", line
        ):
            warn(f"{nid}: possible untagged short date {m.group(0)!r} in line {line.strip()!r}")


def check_contacts(nid: str, plain: str, spans: list[Span]) -> None:
    for m in EMAIL_RE.finditer(plain):
        if not overlaps(spans, m.start(), m.end()):
            err(f"{nid}: untagged e-mail {m.group(0)!r}")
    for pat in PHONE_PATTERNS:
        for m in pat.finditer(plain):
            if not overlaps(spans, m.start(), m.end()):
                err(f"{nid}: untagged phone-like text {m.group(0)!r}")


def check_ages(nid: str, plain: str, spans: list[Span]) -> None:
    for pat in AGE_PATTERNS:
        for m in pat.finditer(plain):
            n, s, e = int(m.group(1)), m.start(1), m.end(1)
            tagged_age = any(a <= s < b and t == "AGE" for a, b, t, _v in spans)
            if n > 89 and not overlaps(spans, s, e):
                err(f"{nid}: age over 89 not tagged: {m.group(0)!r}")
            if n <= 89 and tagged_age:
                err(f"{nid}: age {n} (<= 89) tagged as AGE")


def check_name_tokens(nid: str, plain: str, spans: list[Span]) -> None:
    tokens: set[str] = set()
    for _s, _e, t, v in spans:
        if t == "NAME":
            tokens.update(re.findall(r"[A-ZÁÉÍÓÚÑ][a-záéíóúñ]{3,}|[A-ZÁÉÍÓÚÑ]{4,}", v))
    for tok in sorted(tokens - NAME_STOP):
        for m in re.finditer(rf"\b{re.escape(tok)}\b", plain, re.I):
            if not overlaps(spans, m.start(), m.end()):
                ctx = plain[max(0, m.start() - 25) : m.end() + 25].replace("\n", " ")
                warn(f"{nid}: name token {tok!r} outside a NAME span: ...{ctx}...")


# --------------------------------------------------------------------------- gold
def load_cm() -> Any:
    try:
        return importlib.import_module("simple_icd_10_cm")
    except ImportError:
        return None


def check_meta(nid: str, g: dict[str, Any]) -> bool:
    m = NOTE_ID.match(nid)
    if not m:
        err(f"{nid}: bad note id")
        return False
    lang, kind = m.group(1), m.group(2)
    if (lang == "en") != (kind in EN_KINDS):
        err(f"{nid}: style prefix {kind} does not belong to language {lang}")
    if g.get("language") != lang:
        err(f"{nid}: language {g.get('language')!r} != {lang}")
    if g.get("style") != STYLES[kind]:
        err(f"{nid}: style {g.get('style')!r} != {STYLES[kind]}")
    bad = [f for f in LIST_FIELDS if not isinstance(g.get(f), list)]
    if bad:
        err(f"{nid}: fields {bad} missing or not lists")
    return not bad


def check_not_codes(nid: str, nots: list[Any]) -> set[str]:
    if len(nots) < 2:
        err(f"{nid}: fewer than 2 not_codes")
    found: set[str] = set()
    for item in nots:
        if not isinstance(item, dict) or set(item) != {"code", "reason"}:
            err(f"{nid}: bad not_codes item {item!r}")
            continue
        if item["reason"] not in REASONS:
            err(f"{nid}: not_code {item['code']} has unknown reason {item['reason']!r}")
        found.add(item["code"])
    return found


def check_claim(nid: str, g: dict[str, Any], not_set: set[str]) -> None:
    codes, billed = set(g["codes"]), set(g["billed"])
    unsup, miss = set(g["planted_unsupported"]), set(g["planted_missing"])
    expect = (codes - miss) | unsup
    if billed != expect:
        err(
            f"{nid}: billed != (codes - planted_missing) | planted_unsupported; "
            f"extra {sorted(billed - expect)}, lacking {sorted(expect - billed)}"
        )
    if unsup & codes:
        err(f"{nid}: planted_unsupported overlaps gold codes: {sorted(unsup & codes)}")
    if not miss <= codes:
        err(f"{nid}: planted_missing not in gold codes: {sorted(miss - codes)}")
    why = g.get("unsupported_why")
    if why is None:
        return
    if not isinstance(why, dict) or set(why) != unsup:
        err(f"{nid}: unsupported_why keys != planted_unsupported")
        return
    for c, r in why.items():
        if r not in WHY:
            err(f"{nid}: unsupported_why[{c}] = {r!r} is not one of {sorted(WHY)}")
        elif r in REASONS and c not in not_set:
            warn(f"{nid}: planted {c} is {r} but not listed in not_codes")


def check_codes(nid: str, g: dict[str, Any], not_set: set[str], cm: Any) -> None:
    for f in ("codes", "billed", "planted_unsupported", "planted_missing"):
        if len(set(g[f])) != len(g[f]):
            err(f"{nid}: duplicate code in {f}")
    if not 2 <= len(g["codes"]) <= 8:
        err(f"{nid}: {len(g['codes'])} gold codes (want 2-8)")
    if set(g["codes"]) & not_set:
        err(f"{nid}: code(s) both gold and not_code: {sorted(set(g['codes']) & not_set)}")
    every = set(g["codes"]) | not_set | set(g["billed"]) | set(g["planted_unsupported"])
    for c in sorted(every):
        if not ICD.match(c):
            err(f"{nid}: {c!r} is not ICD-10-CM shaped")
        elif cm is not None and not cm.is_valid_item(c):
            err(f"{nid}: {c} is not a valid ICD-10-CM code")
    if cm is None:
        return
    for c in sorted(set(g["codes"]) | set(g["billed"])):
        if ICD.match(c) and cm.is_valid_item(c) and not cm.is_leaf(c):
            err(f"{nid}: {c} is not a billable leaf code")


def check_gold(gold: dict[str, Any], note_ids: set[str], cm: Any) -> None:
    notes = gold.get("notes")
    if not isinstance(notes, dict):
        err("gold.json: top-level 'notes' object missing")
        return
    for nid in sorted(set(notes) - note_ids):
        err(f"gold.json: {nid} has no file notes/{nid}.txt")
    for nid in sorted(note_ids - set(notes)):
        err(f"notes/{nid}.txt has no entry in gold.json")
    for nid, g in sorted(notes.items()):
        if not check_meta(nid, g):
            continue
        not_set = check_not_codes(nid, g["not_codes"])
        check_codes(nid, g, not_set, cm)
        check_claim(nid, g, not_set)


# --------------------------------------------------------------------------- main
def check_notes() -> dict[str, tuple[str, list[Span]]]:
    parsed: dict[str, tuple[str, list[Span]]] = {}
    for p in sorted(NOTES.glob("*.txt")):
        nid = p.stem
        if not NOTE_ID.match(nid):
            err(f"notes/{p.name}: file name does not follow <lang>-<style>-NN.txt")
        plain, spans = parse(p.read_text(encoding="utf-8"), nid)
        parsed[nid] = (plain, spans)
        words = len(plain.split())
        if not 150 <= words <= 450:
            err(f"{nid}: {words} words (want 150-450)")
        for span in spans:
            check_span(nid, plain, span)
        check_dates(nid, plain, spans)
        check_contacts(nid, plain, spans)
        check_ages(nid, plain, spans)
        check_name_tokens(nid, plain, spans)
    return parsed


def check_balance(note_ids: set[str]) -> dict[str, Counter[str]]:
    styles: dict[str, Counter[str]] = defaultdict(Counter)
    for n in note_ids:
        lang, kind = n.split("-")[:2]
        styles[lang][STYLES.get(kind, kind)] += 1
    for lang in ("en", "es"):
        missing = {"ed", "discharge", "wound", "outpatient"} - set(styles[lang])
        if missing:
            err(f"language {lang} lacks styles {sorted(missing)}")
    return styles


def print_stats(
    parsed: dict[str, tuple[str, list[Span]]], gold: dict[str, Any], styles: dict[str, Counter[str]]
) -> None:
    print(f"notes: {dict(Counter(n.split('-')[0] for n in parsed))}")
    for lang in sorted(styles):
        print(f"  {lang}: {dict(sorted(styles[lang].items()))}")
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for n, (_plain, spans) in parsed.items():
        per[n.split("-")[0]].update(t for _s, _e, t, _v in spans)
    for lang in sorted(per):
        print(f"PHI spans {lang}: {dict(sorted(per[lang].items()))}  total {sum(per[lang].values())}")
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for g in gold.get("notes", {}).values():
        reasons[g.get("language")].update(it.get("reason") for it in g.get("not_codes", []))
    for lang in sorted(reasons):
        print(f"not_codes {lang}: {dict(sorted(reasons[lang].items()))}")
    for n, g in sorted(gold.get("notes", {}).items()):
        w = len(parsed[n][0].split()) if n in parsed else 0
        print(
            f"  {n:12s} {w:3d} words  codes={len(g['codes'])} {' '.join(g['codes'])}"
            f"  | unsupported={len(g['planted_unsupported'])} missing={len(g['planted_missing'])}"
        )


def main(argv: list[str]) -> int:
    global NOTES, GOLD
    directories = [Path(arg) for arg in argv if not arg.startswith("--")]
    if directories:
        NOTES, GOLD = directories[0] / "notes", directories[0] / "gold.json"
    parsed = check_notes()
    try:
        gold = json.loads(GOLD.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        err(f"gold.json unreadable: {e}")
        gold = {"notes": {}}
    cm = load_cm()
    if cm is None:
        warn("simple_icd_10_cm not importable: code validity/leaf checks skipped")
    check_gold(gold, set(parsed), cm)
    styles = check_balance(set(parsed))
    if "--stats" in argv:
        print_stats(parsed, gold, styles)
    for w in warnings:
        print("WARNING:", w)
    for e in errors:
        print("ERROR:", e)
    print(
        f"{len(parsed)} notes, {len(errors)} errors, {len(warnings)} warnings"
        + ("" if cm else " (ICD validity checks skipped)")
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
