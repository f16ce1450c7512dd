"""The Braden scale for predicting pressure-injury risk (Bergstrom, Braden et al., 1987).

Six subscales, each scored by the nurse; the total (6–23) falls in a risk band. Other risk
factors (age, diabetes, incontinence, …) are reported beside the score, never folded into
it: the Braden total means what the scale says it means.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vigia.exceptions import InvalidInput


@dataclass(frozen=True, slots=True)
class Subscale:
    name: str
    label: str
    #: Scores from lowest (worst) to highest, with what each means.
    levels: Mapping[int, str]

    @property
    def lowest(self) -> int:
        return min(self.levels)

    @property
    def highest(self) -> int:
        return max(self.levels)


SUBSCALES: tuple[Subscale, ...] = (
    Subscale(
        "sensory_perception",
        "Sensory perception",
        {1: "completely limited", 2: "very limited", 3: "slightly limited", 4: "no impairment"},
    ),
    Subscale(
        "moisture", "Moisture", {1: "constantly moist", 2: "very moist", 3: "occasionally moist", 4: "rarely moist"}
    ),
    Subscale("activity", "Activity", {1: "bedfast", 2: "chairfast", 3: "walks occasionally", 4: "walks frequently"}),
    Subscale(
        "mobility", "Mobility", {1: "completely immobile", 2: "very limited", 3: "slightly limited", 4: "no limitation"}
    ),
    Subscale("nutrition", "Nutrition", {1: "very poor", 2: "probably inadequate", 3: "adequate", 4: "excellent"}),
    Subscale("friction_shear", "Friction and shear", {1: "problem", 2: "potential problem", 3: "no apparent problem"}),
)
LOWEST_TOTAL = sum(subscale.lowest for subscale in SUBSCALES)  # 6
HIGHEST_TOTAL = sum(subscale.highest for subscale in SUBSCALES)  # 23


class RiskBand(StrEnum):
    VERY_HIGH = "very_high"  # 9 or less
    HIGH = "high"  # 10–12
    MODERATE = "moderate"  # 13–14
    MILD = "mild"  # 15–18
    NONE = "none"  # 19 or more

    @property
    def rank(self) -> int:
        return list(RiskBand).index(self)


def band_of(total: int) -> RiskBand:
    if not LOWEST_TOTAL <= total <= HIGHEST_TOTAL:
        raise ValueError(f"a Braden total is between {LOWEST_TOTAL} and {HIGHEST_TOTAL}, got {total}")
    if total <= 9:
        return RiskBand.VERY_HIGH
    if total <= 12:
        return RiskBand.HIGH
    if total <= 14:
        return RiskBand.MODERATE
    if total <= 18:
        return RiskBand.MILD
    return RiskBand.NONE


@dataclass(frozen=True, slots=True)
class BradenScore:
    subscales: Mapping[str, int]
    total: int
    band: RiskBand

    def to_dict(self) -> dict[str, Any]:
        return {
            "subscales": dict(self.subscales),
            "total": self.total,
            "band": self.band.value,
            "levels": {subscale.name: subscale.levels[self.subscales[subscale.name]] for subscale in SUBSCALES},
        }


def score(values: Any) -> BradenScore:
    """The Braden score of explicit subscale values; `InvalidInput` naming the subscale
    that is missing, not a whole number, or out of its range."""
    if not isinstance(values, Mapping):
        raise InvalidInput("'braden' must be an object with the six Braden subscales", field="braden")
    known = {subscale.name for subscale in SUBSCALES}
    unknown = sorted((set(values) - known), key=str)
    if unknown:
        raise InvalidInput(
            f"'braden' has unknown subscale {unknown[0]!r} (the six are: {', '.join(sorted(known))})",
            field=f"braden.{unknown[0]}",
        )
    scores: dict[str, int] = {}
    for subscale in SUBSCALES:
        field = f"braden.{subscale.name}"
        if subscale.name not in values or values[subscale.name] is None:
            raise InvalidInput(f"Braden subscale {subscale.name!r} ({subscale.label}) is missing", field=field)
        value = values[subscale.name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or int(value) != value
        ):
            raise InvalidInput(f"Braden subscale {subscale.name!r} must be a whole number, got {value!r}", field=field)
        if not subscale.lowest <= value <= subscale.highest:
            raise InvalidInput(
                f"Braden subscale {subscale.name!r} ({subscale.label}) is scored "
                f"{subscale.lowest}–{subscale.highest}, got {int(value)}",
                field=field,
            )
        scores[subscale.name] = int(value)
    total = sum(scores.values())
    return BradenScore(scores, total, band_of(total))


@dataclass(frozen=True, slots=True)
class RiskFactor:
    key: str
    label: str


#: Factors the guideline names beside the Braden scale, read from the patient context.
_FLAGS: tuple[RiskFactor, ...] = (
    RiskFactor("diabetes", "diabetes mellitus"),
    RiskFactor("incontinence", "incontinence"),
    RiskFactor("vascular_disease", "peripheral vascular disease"),
    RiskFactor("previous_pressure_injury", "a previous pressure injury"),
    RiskFactor("smoker", "smoking"),
    RiskFactor("sepsis", "sepsis or fever"),
    RiskFactor("reduced_perfusion", "reduced perfusion or oxygenation"),
    RiskFactor("sedation", "sedation or reduced consciousness"),
)
OLD_AGE = 70
LOW_BMI = 18.5
LOW_ALBUMIN = 3.5  # g/dL


def risk_factors(context: Any) -> list[dict[str, Any]]:
    """The additional risk factors present in the patient context, each with why."""
    if not isinstance(context, Mapping):
        return []
    found = [{"factor": flag.key, "label": flag.label} for flag in _FLAGS if context.get(flag.key) is True]
    age = _number(context.get("age"))
    if age is not None and age >= OLD_AGE:
        found.append({"factor": "age", "label": f"age {int(age)} (70 or over)"})
    bmi = _number(context.get("bmi"))
    if bmi is not None and bmi < LOW_BMI:
        found.append({"factor": "low_bmi", "label": f"body-mass index {bmi:g} (under {LOW_BMI})"})
    albumin = _number(context.get("albumin"))
    if albumin is not None and albumin < LOW_ALBUMIN:
        found.append({"factor": "low_albumin", "label": f"serum albumin {albumin:g} g/dL (under {LOW_ALBUMIN})"})
    return found


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
