"""Scores the clinical coding workload on the evaluation set in `benchmarks/coding_eval/`
(invented notes with gold PHI spans, gold ICD-10-CM codes, conditions that must not be
coded and bills with planted errors; see its README).

Every note goes through the real `clinical_coding_report` pipeline (embedded mode, a
temporary store), its language detected, its bill sent as `billed_codes`. Printed by
language:

- **PHI**: recall (a gold span counts as found when every letter and digit of it lies in
  predicted spans, of any type: what matters is that it is redacted) and precision (a
  predicted span counts as right when it overlaps a gold span), overall and by type;
- **codes**: micro-averaged precision, recall and F1 of the asserted codes against the gold
  (all codes, and without Z codes), and top-5 recall of the ranked list: per note
  |gold ∩ ranked[:5]| / min(5, |gold|), pooled over notes;
- **context**: codes asserted for a condition the gold says is negated, ruled out or a
  relative's (same ICD-10-CM category, unless the gold codes that category for the patient);
- **billing**: planted unsupported codes flagged (unsupported or more specific available),
  planted missing codes found (missing, or suggested in place of a flagged code).

    .venv/bin/python benchmarks/coding_eval.py [--set DIR] [--json] [--misses]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigia import Settings, Vigia
from vigia.workloads.coding import NAME

MARK = re.compile(r"\{\{([A-Z_]+)\|(.*?)\}\}", re.S)
HERE = Path(__file__).resolve().parent / "coding_eval"


@dataclass
class Note:
    key: str
    text: str
    #: (start, end, type) of each gold PHI span in ``text``.
    spans: list[tuple[int, int, str]]
    gold: dict[str, Any]


def parse(marked: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The plain note and its gold spans, from the ``{{TYPE|text}}`` markup."""
    pieces: list[str] = []
    spans = []
    cursor = length = 0
    for match in MARK.finditer(marked):
        pieces.append(marked[cursor : match.start()])
        length += match.start() - cursor
        spans.append((length, length + len(match.group(2)), match.group(1)))
        pieces.append(match.group(2))
        length += len(match.group(2))
        cursor = match.end()
    pieces.append(marked[cursor:])
    return "".join(pieces), spans


def load(directory: Path) -> list[Note]:
    gold = json.loads((directory / "gold.json").read_text(encoding="utf-8"))["notes"]
    notes = []
    for key, entry in sorted(gold.items()):
        text, spans = parse((directory / "notes" / f"{key}.txt").read_text(encoding="utf-8"))
        notes.append(Note(key, text, spans, entry))
    return notes


async def reports(notes: list[Note]) -> tuple[dict[str, dict[str, Any]], float]:
    """Each note's coding report, and the seconds the whole set took once the models were loaded."""
    with tempfile.TemporaryDirectory() as directory:
        vigia = Vigia.from_settings(Settings(data_dir=Path(directory), concurrency=2, poll_interval=0.02))
        async with vigia:
            warm = await vigia.submit(NAME, {"text": notes[0].text})  # loads medspaCy and the code set
            await vigia.wait(warm.id, timeout=300)
            began = time.perf_counter()
            jobs = {
                note.key: await vigia.submit(NAME, {"text": note.text, "billed_codes": note.gold["billed"]})
                for note in notes
            }
            found = {}
            for key, job in jobs.items():
                done = await vigia.wait(job.id, timeout=600)
                if done.result is None:
                    raise SystemExit(f"{key}: the job {done.state.value}: {done.error_message}")
                found[key] = done.result
            return found, time.perf_counter() - began


# --- scoring --------------------------------------------------------------------------------


def _alnum(text: str, start: int, end: int) -> set[int]:
    return {index for index in range(start, end) if text[index].isalnum()}


@dataclass
class Tally:
    phi_gold: Counter[str] = field(default_factory=Counter)
    phi_found: Counter[str] = field(default_factory=Counter)
    predicted: Counter[str] = field(default_factory=Counter)
    predicted_right: Counter[str] = field(default_factory=Counter)
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tp_no_z: int = 0
    fp_no_z: int = 0
    fn_no_z: int = 0
    top5_hit: int = 0
    top5_possible: int = 0
    context_errors: int = 0
    context_checked: int = 0
    unsupported_planted: int = 0
    unsupported_found: int = 0
    missing_planted: int = 0
    missing_found: int = 0
    misses: list[str] = field(default_factory=list)


def score(note: Note, report: dict[str, Any], tally: Tally) -> None:
    text = note.text
    covered: set[int] = set()
    for span in report["phi"]:
        covered.update(range(span["start"], span["end"]))
    for start, end, kind in note.spans:
        tally.phi_gold[kind] += 1
        if _alnum(text, start, end) <= covered:
            tally.phi_found[kind] += 1
        else:
            tally.misses.append(f"{note.key}: PHI missed {kind} {text[start:end]!r}")
    for span in report["phi"]:
        right = any(span["start"] < end and start < span["end"] for start, end, _ in note.spans)
        tally.predicted[span["type"]] += 1
        tally.predicted_right[span["type"]] += right
        if not right:
            tally.misses.append(f"{note.key}: not PHI, found {span['type']} {text[span['start'] : span['end']]!r}")

    gold = set(note.gold["codes"])
    asserted = {item["code"] for item in report["codes"]}
    tally.tp += len(gold & asserted)
    tally.fp += len(asserted - gold)
    tally.fn += len(gold - asserted)
    tally.tp_no_z += len({c for c in gold & asserted if not c.startswith("Z")})
    tally.fp_no_z += len({c for c in asserted - gold if not c.startswith("Z")})
    tally.fn_no_z += len({c for c in gold - asserted if not c.startswith("Z")})
    tally.misses += [f"{note.key}: code missed {code}" for code in sorted(gold - asserted)]
    tally.misses += [f"{note.key}: code not in the gold {code}" for code in sorted(asserted - gold)]
    ranked = [item["code"] for item in report["ranked"]]
    tally.top5_hit += len(gold & set(ranked[:5]))
    tally.top5_possible += min(5, len(gold))

    gold_categories = {code[:3] for code in gold}
    for item in note.gold["not_codes"]:
        if item["reason"] not in ("negated", "ruled_out", "family"):
            continue
        tally.context_checked += 1
        category = item["code"][:3]
        if category in gold_categories:
            continue
        wrong = [code for code in asserted if code[:3] == category]
        if wrong:
            tally.context_errors += 1
            tally.misses.append(f"{note.key}: asserted {wrong} for a {item['reason']} {item['code']}")

    analysis = report["coding_analysis"]
    flagged = {item["code"]: item for item in [*analysis.get("unsupported", []), *analysis.get("more_specific", [])]}
    missing = {item["code"] for item in analysis.get("missing", [])}
    suggested = {item.get("suggested") for item in flagged.values()}
    for code in note.gold["planted_unsupported"]:
        tally.unsupported_planted += 1
        tally.unsupported_found += code in flagged
        if code not in flagged:
            tally.misses.append(f"{note.key}: planted unsupported {code} not flagged")
    for code in note.gold["planted_missing"]:
        tally.missing_planted += 1
        tally.missing_found += code in missing or code in suggested
        if code not in missing and code not in suggested:
            tally.misses.append(f"{note.key}: planted missing {code} not found")


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def summary(tally: Tally) -> dict[str, Any]:
    precision = _ratio(tally.tp, tally.tp + tally.fp)
    recall = _ratio(tally.tp, tally.tp + tally.fn)
    precision_no_z = _ratio(tally.tp_no_z, tally.tp_no_z + tally.fp_no_z)
    recall_no_z = _ratio(tally.tp_no_z, tally.tp_no_z + tally.fn_no_z)
    return {
        "phi_recall": _ratio(sum(tally.phi_found.values()), sum(tally.phi_gold.values())),
        "phi_precision": _ratio(sum(tally.predicted_right.values()), sum(tally.predicted.values())),
        "phi_spans": sum(tally.phi_gold.values()),
        "phi_recall_by_type": {
            kind: f"{tally.phi_found[kind]}/{count}" for kind, count in sorted(tally.phi_gold.items())
        },
        "phi_precision_by_type": {
            kind: f"{tally.predicted_right[kind]}/{count}" for kind, count in sorted(tally.predicted.items())
        },
        "code_precision": precision,
        "code_recall": recall,
        "code_micro_f1": _ratio(2 * precision * recall, precision + recall),
        "code_micro_f1_without_z": _ratio(2 * precision_no_z * recall_no_z, precision_no_z + recall_no_z),
        "top5_recall": _ratio(tally.top5_hit, tally.top5_possible),
        "asserted_in_excluded_context": f"{tally.context_errors} of {tally.context_checked}",
        "planted_unsupported_found": _ratio(tally.unsupported_found, tally.unsupported_planted),
        "planted_unsupported": f"{tally.unsupported_found}/{tally.unsupported_planted}",
        "planted_missing_found": _ratio(tally.missing_found, tally.missing_planted),
        "planted_missing": f"{tally.missing_found}/{tally.missing_planted}",
    }


TARGETS = (
    ("phi_recall", "PHI recall", 0.98),
    ("phi_precision", "PHI precision", 0.90),
    ("top5_recall", "ICD-10-CM top-5 recall", 0.85),
    ("code_micro_f1", "ICD-10-CM micro-F1", 0.75),
    ("planted_unsupported_found", "planted unsupported found", 0.90),
    ("planted_missing_found", "planted missing found", 0.90),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", type=Path, default=HERE, help="the evaluation set's directory")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--misses", action="store_true", help="list every miss")
    args = parser.parse_args()
    notes = load(args.set)
    if not notes:
        raise SystemExit(f"no notes in {args.set}")
    found, seconds = asyncio.run(reports(notes))
    tallies: dict[str, Tally] = defaultdict(Tally)
    for note in notes:
        for group in (note.gold["language"], "all"):
            score(note, found[note.key], tallies[group])
    figures = {group: summary(tally) for group, tally in sorted(tallies.items())}
    figures["all"]["notes_per_second"] = len(notes) / seconds
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        print()
    else:
        counts = Counter(note.gold["language"] for note in notes)
        print(f"{len(notes)} notes ({', '.join(f'{n} {lang}' for lang, n in sorted(counts.items()))}),"
              f" {len(notes) / seconds:.2f} notes/s with 2 workers after the models loaded\n")  # fmt: skip
        groups = [group for group in figures if group != "all"] + ["all"]
        print(f"{'':28}" + "".join(f"{group:>10}" for group in groups) + "   target")
        for key, label, target in TARGETS:
            print(f"{label:28}" + "".join(f"{figures[g][key]:>10.3f}" for g in groups) + f"   >= {target}")
        for key, label in (("code_precision", "ICD-10-CM precision"), ("code_recall", "ICD-10-CM recall"),
                           ("code_micro_f1_without_z", "micro-F1 without Z codes")):  # fmt: skip
            print(f"{label:28}" + "".join(f"{figures[g][key]:>10.3f}" for g in groups))
        print(f"{'asserted in excl. context':28}" + "".join(f"{figures[g]['asserted_in_excluded_context']:>10}"
                                                            for g in groups) + "   0")  # fmt: skip
        for group in groups:
            print(f"\n{group}: PHI found by type {figures[group]['phi_recall_by_type']}")
            print(f"{group}: PHI right by type {figures[group]['phi_precision_by_type']}")
    if args.misses:
        print()
        print("\n".join(tallies["all"].misses))


if __name__ == "__main__":
    main()
