"""The clinical coding report (`clinical_coding_report`): an encounter note in, a coding
report out, with the 12 progress milestones its users know:

    0 % queued · 10 PHI start · 20 PHI complete · 30 filtering start · 40 filtering
    complete · 50 ICD-10 start · 60 SNOMED start · 70 codes complete · 80 coding analysis
    done · 90 quality analysis done · 95 finalising · 100 complete

    intake ─ phi ─ filtering ─ icd10 ─ snomed ─ coding_analysis ─ quality ─ report
    (all on the coding queue)

PHI detection and the report are critical; so are intake and the two analyses, which are
plain functions of what came before. Filtering, ICD-10 and SNOMED degrade: the report says
which did not run and why. Every stage after `phi` reads the redacted text only, and no
stage puts note text in a progress message, an error or a log line: a failure names the
exception's type, never its message (which might quote the note).
"""

from __future__ import annotations

from typing import Any

from vigia.config import Settings
from vigia.context import StageContext
from vigia.exceptions import InvalidInput, Permanent, Skip
from vigia.pipeline import EscalationRule, Pipeline, Severity, Stage
from vigia.workloads.coding import phi
from vigia.workloads.coding.codeset import CODE_FORMAT, known_code, normalise_code

NAME = "clinical_coding_report"
QUEUE = "coding"
INPUT_FIELDS = {"text", "billed_codes", "language"}
MAX_BILLED_CODES = 100
LANGUAGE_NAMES = {"es": "Spanish", "en": "English"}


# --- input --------------------------------------------------------------------------------


def validate(job_input: Any) -> None:
    """At submission: the note, its billed codes and its language, each wrong thing named."""
    if not isinstance(job_input, dict):
        raise InvalidInput('the input must be an object: {"text": "...", "billed_codes": [...]}', field="input")
    unknown = set(job_input) - INPUT_FIELDS
    if unknown:
        raise InvalidInput(
            f"unknown input fields: {', '.join(sorted(unknown))} (expected text, billed_codes, language)",
            field=sorted(unknown)[0],
        )
    text = job_input.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("the note's text is required and must not be empty", field="text")
    limit = Settings.from_env().coding_max_chars
    if len(text) > limit:
        raise InvalidInput(
            f"the note has {len(text):,} characters; at most {limit:,} are accepted (VIGIA_CODING_MAX_CHARS)",
            field="text",
        )
    if "\x00" in text:
        raise InvalidInput("the note's text holds NUL characters: send plain text, not a binary file", field="text")
    _check_billed(job_input.get("billed_codes"))
    language = job_input.get("language")
    if language is not None and language not in LANGUAGE_NAMES:
        raise InvalidInput(
            "language must be 'es' or 'en' (or left out: it is detected); notes in other languages are not read",
            field="language",
        )
    _check_language(text, language)


def _check_billed(billed: Any) -> None:
    if billed is None:
        return
    if not isinstance(billed, list) or not all(isinstance(code, str) for code in billed):
        raise InvalidInput(
            'billed_codes must be a list of ICD-10-CM codes, e.g. ["I10", "E11.22"]', field="billed_codes"
        )
    if len(billed) > MAX_BILLED_CODES:
        raise InvalidInput(f"at most {MAX_BILLED_CODES} billed codes per note", field="billed_codes")
    malformed = [code for code in billed if not CODE_FORMAT.match(code.strip().upper())]
    unknown = [code for code in billed if code not in malformed and not known_code(normalise_code(code))]
    if malformed or unknown:
        problems = []
        if malformed:
            problems.append(f"not in the form of an ICD-10-CM code: {', '.join(repr(code) for code in malformed)}")
        if unknown:
            problems.append(f"not in the ICD-10-CM code set: {', '.join(repr(code) for code in unknown)}")
        raise InvalidInput("billed_codes " + "; ".join(problems), field="billed_codes")


def _check_language(text: str, given: str | None) -> None:
    from vigia.workloads import language as languages  # noqa: PLC0415 -- lingua: only for a coding job

    found = languages.identify(text)
    if found.other is not None:
        code, name = found.other
        said = f" (it was sent as {LANGUAGE_NAMES[given]})" if given else ""
        raise InvalidInput(
            f"the note reads as {name} ({code}){said}; clinical notes are read in Spanish or English only",
            field="text",
        )


# --- stages -------------------------------------------------------------------------------


def _settings(ctx: StageContext) -> Settings:
    return ctx.settings or Settings()


def intake(ctx: StageContext) -> dict[str, Any]:
    """The note's language (as sent, or detected) and its size: nothing of its content."""
    from vigia.workloads import language as languages  # noqa: PLC0415 -- lingua

    text: str = ctx.input["text"]
    given = ctx.input.get("language")
    found = languages.identify(text)
    if found.other is not None:
        raise Permanent(f"the note reads as {found.other[1]} ({found.other[0]}): only Spanish and English are read")
    ctx.progress(1.0, "PHI detection next")
    return {
        "language": given or found.language,
        "language_source": "given" if given else "detected",
        "language_confidence": None if given else round(found.confidence, 3),
        "characters": len(text),
        "lines": text.count("\n") + 1,
        "billed_codes": [normalise_code(code) for code in ctx.input.get("billed_codes") or []],
    }


def detect_phi(ctx: StageContext) -> dict[str, Any]:
    """Every PHI span (offsets, type, score), then the redacted text the later stages read."""
    text: str = ctx.input["text"]
    ctx.progress(0.0, "PHI detection started")
    try:
        spans = phi.find(text)
    except Exception as error:  # its message might quote the note: only its type goes on
        raise RuntimeError(f"PHI detection failed ({type(error).__name__})") from None
    ctx.progress(0.5, f"PHI complete: {len(spans)} span(s)")
    redacted = phi.redact(text, spans)
    counts: dict[str, int] = {}
    for span in spans:
        counts[span.type] = counts.get(span.type, 0) + 1
    ctx.progress(1.0, "note redacted")
    return {
        "spans": [span.to_dict() for span in spans],
        "counts": counts,
        "redacted_text": redacted.text,
        "pieces": [list(piece) for piece in redacted.pieces],
    }


def _redacted(ctx: StageContext) -> phi.Redacted:
    done = ctx.outputs["phi"]
    spans = tuple(phi.Span(**span) for span in done["spans"])
    return phi.Redacted(done["redacted_text"], spans, tuple(tuple(piece) for piece in done["pieces"]))


def _original(redacted: phi.Redacted, start: int, end: int) -> tuple[int, int]:
    """Offsets of the redacted text's ``[start, end)`` in the original note."""
    return redacted.original_offset(start), redacted.original_offset(max(end - 1, start)) + 1


def filtering(ctx: StageContext) -> dict[str, Any]:
    """Sections, boilerplate dropped, and each mention of a condition with its context."""
    from vigia.workloads.coding import context  # noqa: PLC0415 -- spaCy and medspaCy: ~12 s once per process

    ctx.progress(0.0, "clinical filtering started")
    redacted = _redacted(ctx)
    language = ctx.outputs["intake"]["language"]
    filtered = context.filter_note(redacted.text, language)
    ctx.progress(0.5, "filtering complete")
    sections = []
    for section in filtered.sections:
        start, end = _original(redacted, section["start"], section["end"])
        sections.append({**section, "start": start, "end": end})
    mentions = [mention.to_record() for mention in filtered.mentions]
    ctx.progress(1.0, f"{len(mentions)} condition mention(s) in {len(sections)} section(s)")
    return {
        "sections": sections,
        "mentions": mentions,
        "boilerplate_dropped": len(filtered.dropped),
    }


def icd10(ctx: StageContext) -> dict[str, Any]:
    """ICD-10-CM codes the note supports, what was excluded and why, the ranked candidates
    and the documentation gaps."""
    if "filtering" not in ctx.outputs:
        raise Skip("no clinical context (the filtering stage failed): codes are never inferred without it")
    from vigia.workloads.coding import context, icd10  # noqa: PLC0415 -- the code set: 3 s once per process

    ctx.progress(0.0, "ICD-10 inference started")
    redacted = _redacted(ctx)
    mentions = [context.Mention.from_record(record) for record in ctx.outputs["filtering"]["mentions"]]
    inference = icd10.infer(redacted.text, mentions)

    def evidence(mention: context.Mention) -> dict[str, Any]:
        start, end = _original(redacted, mention.start, mention.end)
        return {
            "start": start,
            "end": end,
            # Where it is in the report's redacted text (start/end are the original note's,
            # which the report does not hold): what a reader highlights.
            "redacted_start": mention.start,
            "redacted_end": mention.end,
            "text": mention.text,
            "section": mention.section,
            "context": mention.context,
            "sentence": redacted.text[mention.sentence_start : mention.sentence_end].strip(),
        }

    ctx.progress(1.0, f"{len(inference.codes)} code(s) asserted")
    return {
        "codes": [
            {
                "code": code.code,
                "description": code.description,
                "confidence": code.confidence,
                "concept": code.concept,
                "basis": code.basis,
                "evidence": [evidence(mention) for mention in sorted(code.mentions, key=_diagnoses_first)],
            }
            for code in inference.codes
        ],
        "excluded": [
            {
                "code": item.code,
                "description": item.description,
                "reason": item.reason,
                "concept": item.concept,
                "evidence": [evidence(item.mention)],
            }
            for item in inference.excluded
        ],
        "queries": [
            {"concept": query.concept, "issue": query.issue, "evidence": [evidence(query.mention)]}
            for query in inference.queries
        ],
        "ranked": inference.ranked,
    }


#: Where a note states its diagnoses: evidence from there is shown first.
DIAGNOSTIC_SECTIONS = ("diagnoses", "assessment_and_plan", "assessment", "wound_assessment")


def _diagnoses_first(mention: Any) -> tuple[bool, int]:
    return mention.section not in DIAGNOSTIC_SECTIONS, mention.start


def snomed(ctx: StageContext) -> dict[str, Any]:
    """SNOMED CT concepts of the asserted codes, from the user's licensed release."""
    release_dir = _settings(ctx).coding_snomed_release
    if release_dir is None:
        raise Skip("no terminology configured (VIGIA_CODING_SNOMED_RELEASE names a licensed SNOMED CT release)")
    if "icd10" not in ctx.outputs:
        raise Skip("no ICD-10-CM codes to map (the ICD-10 stage did not run)")
    from vigia.workloads.coding import snomed as terminology  # noqa: PLC0415 -- reads the release once

    ctx.progress(0.0, "SNOMED CT mapping started")
    try:
        release = terminology.release(release_dir)
    except terminology.TerminologyUnavailable as error:
        raise Permanent(str(error)) from None
    concepts = {
        item["code"]: [concept.to_dict() for concept in release.concepts_for(item["code"])]
        for item in ctx.outputs["icd10"]["codes"]
    }
    ctx.progress(1.0, "codes complete")
    return {"terminology": release.name, "concepts": concepts}


def coding_analysis(ctx: StageContext) -> dict[str, Any]:
    """The billed codes against the codes the note supports."""
    from vigia.workloads.coding import analysis  # noqa: PLC0415 -- the code set

    billed = ctx.outputs["intake"]["billed_codes"]
    inferred = ctx.outputs.get("icd10")
    if inferred is None:
        return {"billed": billed, "not_analysed": "no ICD-10-CM codes were inferred (the ICD-10 stage did not run)"}
    found = analysis.analyse(billed, inferred["codes"], inferred["excluded"])
    ctx.progress(1.0, "coding analysis done")
    return found


def quality(ctx: StageContext) -> dict[str, Any]:
    """What a coder would query the clinician about."""
    from vigia.workloads.coding import analysis  # noqa: PLC0415 -- as above

    inferred = ctx.outputs.get("icd10")
    if inferred is None:
        return {"queries": [], "not_analysed": "no clinical reading of the note (the ICD-10 stage did not run)"}
    queries = analysis.quality(inferred["queries"], inferred["codes"])
    ctx.progress(1.0, "quality analysis done")
    return {"queries": queries}


DEGRADABLE = {
    "filtering": "clinical filtering failed: no sections or context, hence no codes",
    "icd10": "ICD-10-CM inference did not run",
    "snomed": "SNOMED CT mapping did not run",
}


def report(ctx: StageContext) -> dict[str, Any]:
    """The coding report: PHI spans (no PHI text), the redacted note, sections, codes,
    candidates, exclusions, SNOMED CT, the billed-code analysis, documentation queries."""
    ctx.progress(0.5, "finalising")
    outputs = ctx.outputs
    settings = _settings(ctx)
    degraded = []
    for stage, what in DEGRADABLE.items():
        if stage not in outputs:
            reason = what
            if stage == "snomed" and settings.coding_snomed_release is None:
                reason = "no terminology configured"
            degraded.append({"stage": stage, "reason": reason})
    inferred = outputs.get("icd10") or {}
    found = outputs["phi"]
    intake_ = outputs["intake"]
    return {
        "language": intake_["language"],
        "language_source": intake_["language_source"],
        "phi": [
            {"start": span["start"], "end": span["end"], "type": span["type"], "score": span["score"]}
            for span in found["spans"]
        ],
        "phi_counts": found["counts"],
        "redacted_text": found["redacted_text"],
        "sections": (outputs.get("filtering") or {}).get("sections", []),
        "codes": inferred.get("codes", []),
        "ranked": inferred.get("ranked", []),
        "excluded": inferred.get("excluded", []),
        "snomed": outputs.get("snomed"),
        "coding_analysis": outputs["coding_analysis"],
        "quality": outputs["quality"]["queries"],
        "degraded": degraded,
    }


def _billing_at_risk(found: Any) -> bool:
    return bool(found.get("unsupported"))


#: A claim with codes the note does not support goes to a coder before it is sent.
BILLING_REVIEW = EscalationRule(
    "coding_analysis",
    _billing_at_risk,
    "billed codes the note does not support: a coder must review the claim",
    severity=Severity.MEDIUM,
    role="coding",
    urgency="normal",
)

pipeline = Pipeline(
    NAME,
    version="1",
    description="Codes a clinical note: PHI redacted, ICD-10-CM codes with evidence, billed codes checked.",
    validate_input=validate,
    escalations=(BILLING_REVIEW,),
    stages=[
        Stage("intake", intake, queue=QUEUE, weight=10, timeout=60, severity=Severity.HIGH),
        Stage("phi", detect_phi, queue=QUEUE, weight=20, timeout=120, severity=Severity.HIGH),
        Stage("filtering", filtering, queue=QUEUE, weight=20, timeout=300, critical=False),
        Stage("icd10", icd10, queue=QUEUE, weight=10, timeout=300, critical=False),
        Stage("snomed", snomed, queue=QUEUE, weight=10, timeout=600, critical=False, severity=Severity.LOW),
        Stage("coding_analysis", coding_analysis, queue=QUEUE, weight=10, timeout=120),
        Stage("quality", quality, queue=QUEUE, weight=10, timeout=60),
        Stage("report", report, queue=QUEUE, weight=10, timeout=60, severity=Severity.HIGH),
    ],
)
