"""ICD-10-CM rules for wounds: pressure ulcers by site, side and stage (L89), each wound its
own code, whether described in prose or in a wound-care table ("Sacrum: stage 4",
"Localización: sacro — Categoría: 3"); non-pressure chronic ulcers of the foot by site, side
and depth (L97)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from vigia.workloads.coding.context import Mention
from vigia.workloads.coding.findings import Add, Found, Inference, Query, Rule
from vigia.workloads.coding.modifiers import (
    LATERAL_SITES,
    ULCER_DEPTH,
    ULCER_SITES_L97,
    first_of,
    folded,
    laterality,
    pressure_ulcer_code,
    ulcer_site,
    ulcer_stage,
)

#: What separates the descriptions of several wounds in one sentence.
_WOUND_SEPARATOR = re.compile(r";|,|\s(?:and|y|e)\s")


def _wound_clauses(text: str, mentions: Sequence[Mention]) -> dict[Mention, str]:
    """The words that describe each pressure-ulcer mention: its sentence, or where one
    sentence lists several ("stage 3 on the sacrum; unstageable on the left heel"), the part
    from the separator before it to the separator before the next one."""
    ordered = sorted(mentions, key=lambda mention: mention.start)
    leads = {}
    for index, mention in enumerate(ordered):
        previous = ordered[index - 1] if index else None
        floor = mention.sentence_start
        if previous is not None and previous.sentence_start == mention.sentence_start:
            floor = previous.end
        separators = list(_WOUND_SEPARATOR.finditer(text, floor, mention.start))
        leads[mention] = separators[-1].start() if separators and floor != mention.sentence_start else floor
    clauses = {}
    for index, mention in enumerate(ordered):
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        end = mention.sentence_end
        if following is not None and following.sentence_start == mention.sentence_start:
            end = leads[following]
        clause = text[leads[mention] : end]
        clauses[mention] = _table_row(text, mention) if "\n" in clause.strip() else clause
    return clauses


#: Columns of a table: words three or more spaces apart.
_COLUMNS = re.compile(r"\S {3,}\S")


def _table_row(text: str, mention: Mention) -> str:
    """A mention in a table row ("L heel   Deep tissue" / "   injury (DTI)"): its row, and the
    row it continues when its line starts in a later column; a sentence across rows mixes
    the wounds. Text that is not a table keeps its whole sentence."""
    begin = text.rfind("\n", 0, mention.start) + 1
    end = text.find("\n", mention.end)
    end = len(text) if end == -1 else end
    line = text[begin:end]
    if not _COLUMNS.search(line):
        return text[mention.sentence_start : mention.sentence_end]
    if line[:1].isspace() and begin > 0:
        previous = text.rfind("\n", 0, begin - 1) + 1
        return text[previous:end]
    return line


def _pressure_ulcers(found: Found, add: Add, result: Inference) -> set[str]:
    if not found.has("pressure_ulcer"):
        return set()
    groups: dict[tuple[str | None, str | None], tuple[list[Mention], str | None]] = {}
    clauses = _wound_clauses(found.text, found.mentions("pressure_ulcer"))
    for mention in found.mentions("pressure_ulcer"):
        sentence = clauses[mention]
        site, side, stage = ulcer_site(sentence), laterality(sentence), ulcer_stage(sentence)
        mentions, best = groups.get((site, side), ([], None))
        order = {None: 0, "unstageable": 1, "deep tissue": 1, "1": 2, "2": 3, "3": 4, "4": 5}
        groups[(site, side)] = ([*mentions, mention], stage if order[stage] > order[best] else best)
    for row, stage in _wound_rows(found):
        site, side = ulcer_site(row), laterality(row)
        if (site, side) not in groups or groups[(site, side)][1] is None:
            mentions = groups[(site, side)][0] if (site, side) in groups else [found.first("pressure_ulcer")]
            groups[(site, side)] = (mentions, stage)
    specified = any(site is not None or stage is not None for (site, _), (_, stage) in groups.items())
    for (site, side), (mentions, stage) in groups.items():
        if specified and site is None and stage is None:
            continue  # "the pressure ulcer", named again: one of those described, not another
        basis = [f"site: {site or 'not documented'}", f"stage: {stage or 'not documented'}"]
        if site in LATERAL_SITES:
            basis.append(f"side: {side or 'not documented'}")
        add(pressure_ulcer_code(site, side, stage), "pressure_ulcer", mentions, basis)
        if stage is None:
            result.queries.append(Query("pressure_ulcer", "pressure injury documented without its stage", mentions[0]))
        if site is None:
            result.queries.append(Query("pressure_ulcer", "pressure injury documented without its site", mentions[0]))
        elif site in LATERAL_SITES and side is None:
            result.queries.append(
                Query("pressure_ulcer", f"pressure injury of the {site}: side not documented", mentions[0])
            )
    return {"pressure_ulcer"}


#: Other wounds a table may list beside pressure injuries: not theirs to code.
_OTHER_WOUND = re.compile(
    r"\b(?:wagner|diabetic|diabetico|diabetica|venous|venosa|arterial|surgical|quirurgica|dehiscen\w*|laceration"
    r"|laceracion|burn|quemadura|skin tear|desgarro|incision|herida operatoria|neuropatic\w*|neuropatica)\b"
)
#: How many lines a wound's record may span ("Localización: sacro" then "Categoría: 3").
_RECORD_LINES = 3
#: How far (lines) from the last pressure injury named a wound table may go on.
_WINDOW = 12


def _wound_rows(found: Found) -> Iterator[tuple[str, str]]:
    """Wounds listed as rows near where a pressure injury is named (a table, a list): a site
    and a stage on one line, or on a few consecutive lines, with no other condition or kind
    of wound named on them."""
    ulcers = found.mentions("pressure_ulcer")
    others = [m for key, ms in found.by_concept.items() if key != "pressure_ulcer" for m in ms]
    lines = list(re.finditer(r"^.*$", found.text, re.M))
    anchors = [index for index, line in enumerate(lines) if any(line.start() <= m.start <= line.end() for m in ulcers)]
    pending: tuple[str, int] | None = None
    last = anchors[0] if anchors else None  # a table may also come just before the injury is named
    for index, line in enumerate(lines):
        first, end = line.span()
        if index in anchors:
            last = index
        if last is None or abs(index - last) > _WINDOW or first == end:
            continue
        plain = folded(line.group())
        if _OTHER_WOUND.search(plain) or any(first <= mention.start < end for mention in others):
            pending = None
            continue
        site, stage = ulcer_site(plain), ulcer_stage(plain)
        if site and stage:
            pending, last = None, max(last, index)
            yield line.group(), stage
        elif site:
            pending = (line.group(), index)
        elif stage and pending is not None and index - pending[1] < _RECORD_LINES:
            yield f"{pending[0]} {line.group()}", stage
            pending, last = None, max(last, index)


def _foot_ulcers(found: Found, add: Add, result: Inference) -> set[str]:
    """Non-pressure chronic ulcers of the foot (L97.4- heel and midfoot, L97.5- other part
    of the foot, L97.3- ankle) by side and depth; with diabetes E11.621 goes with it."""
    if not found.has("diabetic_foot_ulcer"):
        return set()
    mentions = found.mentions("diabetic_foot_ulcer")
    words = folded(" ".join([found.sentences("diabetic_foot_ulcer"), *(mention.text for mention in mentions)]))
    site = first_of(ULCER_SITES_L97, words, "5")
    side = {"right": "1", "left": "2"}.get(laterality(words) or "", "0")
    depth = first_of(ULCER_DEPTH, words, "9")
    basis = [f"side: {laterality(words) or 'not documented'}", f"depth: {depth if depth != '9' else 'not documented'}"]
    add(f"L97.{site}{side}{depth}", "diabetic_foot_ulcer", mentions, basis)
    if depth == "9":
        result.queries.append(Query("diabetic_foot_ulcer", "foot ulcer documented without its depth", mentions[0]))
    if side == "0":
        result.queries.append(Query("diabetic_foot_ulcer", "foot ulcer: side not documented", mentions[0]))
    return {"diabetic_foot_ulcer"}


WOUNDS: tuple[Rule, ...] = (_pressure_ulcers, _foot_ulcers)
