"""Triage of a pressure-injury case: emergency, urgent or routine, with the reasons.

A table of rules over the worst injury found, the Braden risk band and whether the photo
could be assessed; the first level any rule reaches wins, and every rule that fired is a
reason. Stage 4 and unstageable injuries are emergencies (a specialist at once), stage 3
and deep tissue injuries urgent, as are cases no machine could grade in a patient at high
risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from vigia.workloads.pressure_injury.braden import RiskBand
from vigia.workloads.pressure_injury.guidelines import Category


class Level(StrEnum):
    EMERGENCY = "emergency"  # a specialist now
    URGENT = "urgent"  # a clinician within hours
    ROUTINE = "routine"  # the care plan, reviewed on the next round

    @property
    def rank(self) -> int:
        return {Level.EMERGENCY: 3, Level.URGENT: 2, Level.ROUTINE: 1}[self]


@dataclass(frozen=True, slots=True)
class Triage:
    level: Level
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level.value, "reasons": list(self.reasons)}


HIGH_RISK = (RiskBand.VERY_HIGH, RiskBand.HIGH)


def triage(category: Category | None, *, graded: bool, band: RiskBand, assessable: bool) -> Triage:
    """``category``: the worst injury detected (None: none found, or not graded);
    ``graded``: whether a detector looked at all; ``assessable``: whether the photo was
    good enough to look at."""
    found: list[tuple[Level, str]] = []
    if category in (Category.STAGE_4, Category.UNSTAGEABLE):
        found.append((Level.EMERGENCY, f"{category.value.replace('_', ' ')} pressure injury: specialist at once"))
    if category in (Category.STAGE_3, Category.DEEP_TISSUE):
        found.append((Level.URGENT, f"{category.value.replace('_', ' ')}: specialist review within 24 hours"))
    if category is Category.STAGE_2 and band in HIGH_RISK:
        found.append((Level.URGENT, f"stage 2 injury in a patient at {band.value.replace('_', ' ')} risk"))
    if not graded and band in HIGH_RISK:
        found.append((Level.URGENT, "no automatic grading and the patient is at high risk: assess in person"))
    if not assessable and band in HIGH_RISK:
        found.append((Level.URGENT, "the photo cannot be assessed and the patient is at high risk"))
    if not graded:
        found.append((Level.ROUTINE, "no automatic grading: a clinician must grade the wound"))
    if not assessable:
        found.append((Level.ROUTINE, "the photo is too poor to assess: take it again"))
    if category is None and graded and assessable:
        found.append((Level.ROUTINE, "no pressure injury detected"))
    if category in (Category.STAGE_1, Category.STAGE_2):
        found.append((Level.ROUTINE, f"{category.value.replace('_', ' ')} injury: follow the care plan"))
    if band in HIGH_RISK:
        found.append((Level.ROUTINE, f"Braden risk {band.value.replace('_', ' ')}: prevention plan"))
    level = max((level for level, _ in found), key=lambda level: level.rank, default=Level.ROUTINE)
    return Triage(level, tuple(reason for _, reason in found) or ("no finding calls for more than routine care",))
