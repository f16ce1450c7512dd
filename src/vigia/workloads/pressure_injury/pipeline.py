"""The pressure-injury case (`pressure_injury_case`): a nurse photographs a wound; the case
is analysed in the background, risk scored, assessed against the guideline, triaged, the
right people told, and a specialist paged at once for a stage-4 injury.

    intake ── detect ─────┐
                          ├─ assessment ── triage ─┬─ audit
    risk ─────────────────┘                        └─ notify   (the case summary)

Input (the photo comes as the job's file, uploaded as multipart):
``{"patient_code": "PT-…", "braden": {six subscales}, "context": {"age": 82, "diabetes": true, …}}``
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vigia.blobs import BlobRef
from vigia.config import Settings
from vigia.context import StageContext
from vigia.exceptions import InvalidInput, Permanent
from vigia.pipeline import EscalationRule, Pipeline, Severity, Stage
from vigia.retry import RetryPolicy
from vigia.workloads.pressure_injury import braden
from vigia.workloads.pressure_injury.guidelines import Category, recommendations
from vigia.workloads.pressure_injury.triage import Level, triage

log = logging.getLogger("vigia.workloads.pressure_injury")

NAME = "pressure_injury_case"
ACCEPTS = ("image/jpeg", "image/png")
#: Below this, a detection is not trusted without a person (SPEC §7.1).
MIN_CONFIDENCE = 0.60
MAX_PATIENT_CODE = 64


def validate(job_input: Any) -> None:
    """Refuse a case at submission when its data cannot be used (a 422 naming the field)."""
    if not isinstance(job_input, Mapping):
        raise InvalidInput('a case is an object: {"patient_code": ..., "braden": {...}, "context": {...}}')
    code = job_input.get("patient_code")
    if not isinstance(code, str) or not code.strip() or len(code) > MAX_PATIENT_CODE:
        raise InvalidInput(
            f"'patient_code' must be the patient's pseudonymous code (1–{MAX_PATIENT_CODE} characters)",
            field="patient_code",
        )
    braden.score(job_input.get("braden"))
    context = job_input.get("context", {})
    if context is not None and not isinstance(context, Mapping):
        raise InvalidInput("'context' must be an object of patient facts", field="context")
    if "file" not in job_input:
        raise InvalidInput("a case needs its wound photo (a JPEG or PNG file)", field="file")
    BlobRef.from_input(job_input["file"])


def check_photo(path: Path, media_type: str, settings: Settings) -> None:
    """At submission, from the header alone: a photo too large, a decompression bomb or an
    image that is almost all one colour is a 422, before any worker decodes it."""
    from vigia.workloads.pressure_injury import image  # noqa: PLC0415 -- Pillow (the pressure-injury extra): only when a case is submitted

    try:
        image.check_header(path.read_bytes())
    except image.InvalidImage as error:
        raise InvalidInput(error.reason, field="file") from None


# --- stages -------------------------------------------------------------------------------


def intake(ctx: StageContext) -> dict[str, Any]:
    """Check the photo, turn it upright, strip its metadata, measure its quality."""
    from vigia.workloads.pressure_injury import image  # noqa: PLC0415 -- NumPy and Pillow (the pressure-injury extra): only when a case runs

    files = ctx.require_files()
    original = BlobRef.from_input(ctx.input["file"])
    ctx.progress(0.1, "reading the photo")
    try:
        data = files.read(original)
    except FileNotFoundError:
        raise Permanent("the case's photo is no longer in blob storage") from None
    ctx.progress(0.3, "checking and stripping metadata")
    photo = image.clean(data)
    # The stripped copy replaces the upload: the photo with its GPS, device and dates is
    # gone from storage, and every later stage (and reader) gets the clean one.
    stored = files.replace(original, photo.data, photo.media_type)
    ctx.progress(0.7, "measuring quality")
    measured = image.quality(photo.image)
    return {"photo": stored.to_input(), "quality": measured.to_dict()}


def detect(ctx: StageContext) -> dict[str, Any]:
    """Find and grade injuries with the configured model; without one, say so (a person
    grades the wound: the case goes to review), never guess."""
    model = ctx.settings.pi_model if ctx.settings is not None else None
    if model is None:
        return {
            "available": False,
            "reason": "no detection model is configured (VIGIA_PI_MODEL): automatic grading is unavailable",
            "grade": None,
            "confidence": None,
            "detections": [],
        }
    from vigia.workloads.pressure_injury import detection, image  # noqa: PLC0415 -- NumPy and Pillow (the pressure-injury extra): only when a case runs

    ctx.progress(0.1, "loading the model")
    try:
        detector = _detector(Path(model), Path(model).stat().st_mtime if Path(model).exists() else 0.0)
    except detection.DetectorError as error:
        raise Permanent(str(error)) from None
    photo = BlobRef.from_input(ctx.outputs["intake"]["photo"])
    # Twice the model's input side: what it sees is the same, and a 40-megapixel photo is
    # never decoded at full size a second time.
    pixels, factor = image.for_detection(ctx.require_files().read(photo), 2 * max(detector.size))
    ctx.progress(0.4, "running the detector")
    try:
        found = [
            dataclasses.replace(item, box=tuple(value * factor for value in item.box))
            for item in detector.detect(pixels)
        ]
    except detection.DetectorError as error:
        raise Permanent(str(error)) from None
    worst = detection.worst(found)
    return {
        "available": True,
        "model": detector.name,
        "grade": worst.category.value if worst else None,
        "confidence": round(worst.confidence, 4) if worst else None,
        "detections": [item.to_dict() for item in found],
    }


@functools.lru_cache(maxsize=4)
def _detector(path: Path, modified: float) -> Any:
    """One loaded model per process and file version (``modified`` makes a new file load)."""
    from vigia.workloads.pressure_injury.detection import YoloOnnxDetector  # noqa: PLC0415 -- NumPy and Pillow (the pressure-injury extra): only when a case runs

    return YoloOnnxDetector(path)


def risk(ctx: StageContext) -> dict[str, Any]:
    """The Braden score and band, and the other risk factors beside it."""
    score = braden.score(ctx.input.get("braden"))
    return {"braden": score.to_dict(), "risk_factors": braden.risk_factors(ctx.input.get("context"))}


def assessment(ctx: StageContext) -> dict[str, Any]:
    """Guideline recommendations for the injury found and the patient's risk."""
    found = ctx.outputs.get("detect")  # absent when the detector failed (non-critical)
    graded = bool(found and found["available"])
    category = Category(found["grade"]) if graded and found and found["grade"] else None
    score = ctx.outputs["risk"]["braden"]
    band = braden.RiskBand(score["band"])
    return {
        "graded": graded,
        "category": category.value if category else None,
        "recommendations": recommendations(category, band, score["subscales"]["nutrition"]),
    }


def triage_case(ctx: StageContext) -> dict[str, Any]:
    """Emergency, urgent or routine, with the reasons."""
    assessed = ctx.outputs["assessment"]
    category = Category(assessed["category"]) if assessed["category"] else None
    band = braden.RiskBand(ctx.outputs["risk"]["braden"]["band"])
    assessable = bool(ctx.outputs["intake"]["quality"]["assessable"])
    decided = triage(category, graded=assessed["graded"], band=band, assessable=assessable)
    return decided.to_dict()


def audit(ctx: StageContext) -> dict[str, Any]:
    """Record the clinical decisions in the audit log (the patient as a pseudonym)."""
    found = ctx.outputs.get("detect") or {}
    score = ctx.outputs["risk"]["braden"]
    decided = ctx.outputs["triage"]
    ctx.audit(
        "pressure_injury.triaged",
        level=decided["level"],
        grade=found.get("grade"),
        confidence=found.get("confidence"),
        graded=bool(found.get("available")),
        braden_total=score["total"],
        risk_band=score["band"],
        assessable=ctx.outputs["intake"]["quality"]["assessable"],
    )
    return {"audited": True}


def notify(ctx: StageContext) -> dict[str, Any]:
    """Tell the medical team of a routine case (escalated ones were told already), and
    return the case summary: the job's result."""
    found = ctx.outputs.get("detect") or {}
    decided = ctx.outputs["triage"]
    escalated = _escalated(found)
    if not escalated:
        ctx.notify(
            "medical_team",
            "normal",
            f"pressure-injury case triaged {decided['level']}",
            f"Job {ctx.job_id}: {'; '.join(decided['reasons'])}.",
        )
    return {
        "triage": decided,
        "grade": found.get("grade"),
        "confidence": found.get("confidence"),
        "graded": bool(found.get("available")),
        "risk": ctx.outputs["risk"],
        "quality": ctx.outputs["intake"]["quality"],
        "recommendations": ctx.outputs["assessment"]["recommendations"],
        "photo": ctx.outputs["intake"]["photo"],
        "escalated": escalated,
    }


# --- escalation -----------------------------------------------------------------------------


def _emergency(found: Mapping[str, Any]) -> bool:
    return found.get("grade") in (Category.STAGE_4.value, Category.UNSTAGEABLE.value)


def _doubtful(found: Mapping[str, Any]) -> bool:
    confidence = found.get("confidence")
    return bool(found.get("available")) and confidence is not None and confidence < MIN_CONFIDENCE


def _ungraded(found: Mapping[str, Any]) -> bool:
    return not found.get("available")


def _escalated(found: Mapping[str, Any]) -> bool:
    return not found or _emergency(found) or _doubtful(found) or _ungraded(found)


ESCALATIONS = (
    EscalationRule(
        "detect",
        _emergency,
        "stage 4 or unstageable pressure injury detected: specialist now",
        severity=Severity.CRITICAL,
        role="specialists",
        urgency="critical",
    ),
    EscalationRule("detect", _doubtful, "detection confidence below 0.60: human review required", role="medical_team"),
    EscalationRule(
        "detect", _ungraded, "automatic grading unavailable: a clinician must grade the wound", role="medical_team"
    ),
)

pipeline = Pipeline(
    NAME,
    version="1",
    description="Pressure-injury case: photo intake, lesion detection, Braden risk, guideline assessment, triage.",
    validate_input=validate,
    accepts=ACCEPTS,
    check_file=check_photo,
    subject_field="patient_code",
    escalations=(),
    stages=[
        Stage("intake", intake, after=(), queue="image_processing", timeout=120, severity=Severity.HIGH, weight=2),
        Stage(
            "detect",
            detect,
            after=("intake",),
            queue="image_processing",
            timeout=240,
            severity=Severity.HIGH,
            critical=False,  # without it the case still goes on, to a person
            weight=3,
            run_in="process",  # the model's inference is CPU work; killed at its timeout
        ),
        Stage("risk", risk, after=(), queue="medical_priority", timeout=60, severity=Severity.HIGH),
        Stage(
            "assessment",
            assessment,
            after=("detect", "risk"),
            queue="medical_priority",
            timeout=60,
            severity=Severity.HIGH,
        ),
        Stage(
            "triage",
            triage_case,
            after=("assessment",),
            queue="medical_priority",
            timeout=60,
            severity=Severity.CRITICAL,
        ),
        Stage(
            "audit",
            audit,
            after=("triage",),
            queue="audit_logging",
            timeout=60,
            severity=Severity.MEDIUM,
            retry=RetryPolicy(max_attempts=5, base_delay=1),
        ),
        Stage("notify", notify, after=("triage",), queue="notifications", timeout=60, severity=Severity.HIGH),
    ],
)
for _rule in ESCALATIONS:
    pipeline.escalate_when(_rule)

__all__ = ["ACCEPTS", "MIN_CONFIDENCE", "NAME", "Level", "pipeline", "validate"]
