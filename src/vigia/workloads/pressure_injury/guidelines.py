"""Guideline-based care recommendations, as data: what to do for a pressure injury of a
given NPIAP category in a patient of a given Braden risk band, each with its source.

Source: European Pressure Ulcer Advisory Panel, National Pressure Injury Advisory Panel
and Pan Pacific Pressure Injury Alliance, *Prevention and Treatment of Pressure
Ulcers/Injuries: Clinical Practice Guideline. The International Guideline*, 2019. The
references name the guideline's chapters; the wording here is a summary for triage, not a
substitute for the guideline or for clinical judgement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from vigia.workloads.pressure_injury.braden import RiskBand

GUIDELINE = "EPUAP/NPIAP/PPPIA International Guideline 2019"


class Category(StrEnum):
    """NPIAP pressure-injury categories (2016 staging, used by the 2019 guideline)."""

    STAGE_1 = "stage_1"  # intact skin, non-blanchable erythema
    STAGE_2 = "stage_2"  # partial-thickness skin loss with exposed dermis
    STAGE_3 = "stage_3"  # full-thickness skin loss
    STAGE_4 = "stage_4"  # full-thickness skin and tissue loss (fascia, muscle, tendon, bone)
    UNSTAGEABLE = "unstageable"  # obscured full-thickness loss (slough or eschar)
    DEEP_TISSUE = "deep_tissue_injury"  # persistent non-blanchable deep red, maroon or purple

    @property
    def severity(self) -> int:
        """Order for "the worst injury found": deep tissue injury may evolve to full
        thickness; unstageable is at least stage 3."""
        return _SEVERITY[self]


_SEVERITY = {
    Category.STAGE_1: 1,
    Category.STAGE_2: 2,
    Category.DEEP_TISSUE: 3,
    Category.STAGE_3: 4,
    Category.UNSTAGEABLE: 5,
    Category.STAGE_4: 6,
}

CHAPTER_RISK = f"{GUIDELINE}, chapter 'Risk Factors and Risk Assessment'"
CHAPTER_REPOSITIONING = f"{GUIDELINE}, chapter 'Repositioning and Early Mobilization'"
CHAPTER_SURFACES = f"{GUIDELINE}, chapter 'Support Surfaces'"
CHAPTER_NUTRITION = f"{GUIDELINE}, chapter 'Nutrition in Pressure Injury Prevention and Treatment'"
CHAPTER_SKIN = f"{GUIDELINE}, chapter 'Preventive Skin Care'"
CHAPTER_CLASSIFICATION = f"{GUIDELINE}, chapter 'Classification of Pressure Injuries'"
CHAPTER_ASSESSMENT = f"{GUIDELINE}, chapter 'Assessment of Pressure Injuries and Monitoring of Healing'"
CHAPTER_CLEANSING = f"{GUIDELINE}, chapter 'Cleansing and Debridement'"
CHAPTER_DRESSINGS = f"{GUIDELINE}, chapter 'Wound Dressings for Treatment of Pressure Injuries'"
CHAPTER_INFECTION = f"{GUIDELINE}, chapter 'Infection and Biofilms'"
CHAPTER_SURGERY = f"{GUIDELINE}, chapter 'Pressure Injury Surgery'"
CHAPTER_PAIN = f"{GUIDELINE}, chapter 'Pain Assessment and Treatment'"


@dataclass(frozen=True, slots=True)
class Recommendation:
    topic: str
    text: str
    reference: str

    def to_dict(self) -> dict[str, str]:
        return {"topic": self.topic, "text": self.text, "reference": self.reference}


REPOSITIONING: Mapping[RiskBand, Recommendation] = {
    RiskBand.VERY_HIGH: Recommendation(
        "repositioning",
        "Reposition at least every 2 hours, individualised to tolerance and skin response; "
        "30° tilted side-lying; keep the head of the bed at 30° or lower unless contraindicated.",
        CHAPTER_REPOSITIONING,
    ),
    RiskBand.HIGH: Recommendation(
        "repositioning",
        "Reposition every 2 hours, individualised to tolerance and skin response; 30° tilted side-lying.",
        CHAPTER_REPOSITIONING,
    ),
    RiskBand.MODERATE: Recommendation(
        "repositioning",
        "Reposition every 2 to 3 hours; encourage early mobilisation as tolerated.",
        CHAPTER_REPOSITIONING,
    ),
    RiskBand.MILD: Recommendation(
        "repositioning",
        "Reposition at least every 4 hours; encourage mobilisation and self-repositioning.",
        CHAPTER_REPOSITIONING,
    ),
    RiskBand.NONE: Recommendation(
        "repositioning",
        "Encourage mobility; reassess risk on any change in condition.",
        CHAPTER_REPOSITIONING,
    ),
}

SUPPORT_SURFACE: Mapping[RiskBand, Recommendation] = {
    RiskBand.VERY_HIGH: Recommendation(
        "support_surface",
        "Use an active support surface (alternating pressure) or a high-specification reactive foam "
        "mattress with pressure redistribution; a pressure-redistributing cushion when seated.",
        CHAPTER_SURFACES,
    ),
    RiskBand.HIGH: Recommendation(
        "support_surface",
        "Use a high-specification reactive single-layer foam mattress or an active surface if "
        "frequent repositioning is not possible.",
        CHAPTER_SURFACES,
    ),
    RiskBand.MODERATE: Recommendation(
        "support_surface", "Use a high-specification reactive foam mattress.", CHAPTER_SURFACES
    ),
    RiskBand.MILD: Recommendation(
        "support_surface", "Use a high-specification foam mattress rather than a standard one.", CHAPTER_SURFACES
    ),
    RiskBand.NONE: Recommendation(
        "support_surface", "A standard hospital mattress is adequate; reassess on change.", CHAPTER_SURFACES
    ),
}

#: Surfaces for an existing injury override the risk-based choice where they ask for more.
INJURY_SURFACE: Mapping[Category, Recommendation] = {
    Category.STAGE_3: Recommendation(
        "support_surface",
        "For a stage 3 injury, use a surface with enhanced pressure redistribution, shear reduction "
        "and microclimate control; keep the patient off the injury.",
        CHAPTER_SURFACES,
    ),
    Category.STAGE_4: Recommendation(
        "support_surface",
        "For a stage 4 injury, use an air-fluidised or low-air-loss / alternating-pressure surface "
        "where available; keep the patient off the injury.",
        CHAPTER_SURFACES,
    ),
    Category.UNSTAGEABLE: Recommendation(
        "support_surface",
        "Treat as at least stage 3: enhanced pressure redistribution, shear reduction and microclimate control.",
        CHAPTER_SURFACES,
    ),
    Category.DEEP_TISSUE: Recommendation(
        "support_surface",
        "Offload the area completely; enhanced pressure redistribution; monitor closely for evolution.",
        CHAPTER_SURFACES,
    ),
}

WOUND_CARE: Mapping[Category, tuple[Recommendation, ...]] = {
    Category.STAGE_1: (
        Recommendation(
            "wound_care",
            "Relieve pressure on the area; keep the skin clean and moisturised; a prophylactic "
            "silicone foam dressing may protect it. Do not massage.",
            CHAPTER_SKIN,
        ),
    ),
    Category.STAGE_2: (
        Recommendation(
            "wound_care",
            "Cleanse at each dressing change; keep the wound bed moist with a hydrocolloid, "
            "hydrogel or polymeric dressing; protect the surrounding skin.",
            CHAPTER_DRESSINGS,
        ),
    ),
    Category.STAGE_3: (
        Recommendation(
            "wound_care",
            "Cleanse; debride devitalised tissue; manage exudate (foam, alginate or hydrofibre "
            "dressings); fill dead space.",
            CHAPTER_CLEANSING,
        ),
        Recommendation("infection", "Assess for local and spreading infection and biofilm.", CHAPTER_INFECTION),
        Recommendation("pain", "Assess and treat pain, especially at dressing changes.", CHAPTER_PAIN),
    ),
    Category.STAGE_4: (
        Recommendation(
            "wound_care",
            "Cleanse; debride devitalised tissue; manage exudate and fill dead space; assess for "
            "exposed bone and osteomyelitis.",
            CHAPTER_CLEANSING,
        ),
        Recommendation("infection", "Assess for infection, including osteomyelitis.", CHAPTER_INFECTION),
        Recommendation("pain", "Assess and treat pain, especially at dressing changes.", CHAPTER_PAIN),
    ),
    Category.UNSTAGEABLE: (
        Recommendation(
            "wound_care",
            "Do not remove stable, dry, adherent eschar on heels or ischaemic limbs; elsewhere "
            "debride slough or eschar to stage the injury.",
            CHAPTER_CLEANSING,
        ),
        Recommendation("classification", "Reclassify once the wound bed can be seen.", CHAPTER_CLASSIFICATION),
    ),
    Category.DEEP_TISSUE: (
        Recommendation(
            "wound_care",
            "Do not debride; protect the area; reassess at least daily: it may evolve to full-thickness loss.",
            CHAPTER_ASSESSMENT,
        ),
    ),
}

NUTRITION_SCREENING = Recommendation(
    "nutrition", "Screen for malnutrition and refer to a dietitian when at risk.", CHAPTER_NUTRITION
)
NUTRITION_FOR_HEALING = Recommendation(
    "nutrition",
    "Provide 30–35 kcal/kg/day and 1.25–1.5 g protein/kg/day, adjusted to the individual; "
    "consider a high-calorie, high-protein supplement with arginine, zinc and antioxidants.",
    CHAPTER_NUTRITION,
)

REFERRALS: Mapping[Category, Recommendation] = {
    Category.STAGE_3: Recommendation(
        "referral", "Refer to a wound-care specialist (tissue viability) within 24 hours.", CHAPTER_ASSESSMENT
    ),
    Category.STAGE_4: Recommendation(
        "referral",
        "Refer at once to a wound-care specialist and for a surgical opinion.",
        CHAPTER_SURGERY,
    ),
    Category.UNSTAGEABLE: Recommendation(
        "referral", "Refer at once to a wound-care specialist for debridement and staging.", CHAPTER_CLEANSING
    ),
    Category.DEEP_TISSUE: Recommendation(
        "referral", "Specialist review within 24 hours; document and monitor daily.", CHAPTER_ASSESSMENT
    ),
}
UNGRADED_REFERRAL = Recommendation(
    "referral",
    "No automatic grading: a clinician must assess and classify the wound in person.",
    CHAPTER_CLASSIFICATION,
)


def recommendations(category: Category | None, band: RiskBand, nutrition_score: int) -> list[dict[str, str]]:
    """What the guideline recommends for an injury of ``category`` (None: not graded) in a
    patient of risk ``band`` whose Braden nutrition subscale is ``nutrition_score``."""
    chosen: list[Recommendation] = [REPOSITIONING[band]]
    chosen.append(INJURY_SURFACE.get(category, SUPPORT_SURFACE[band]) if category else SUPPORT_SURFACE[band])
    if category is not None:
        chosen.extend(WOUND_CARE[category])
    if category is not None and category is not Category.STAGE_1:
        chosen.append(NUTRITION_FOR_HEALING)
    elif nutrition_score <= 2 or band.rank <= RiskBand.MODERATE.rank:
        chosen.append(NUTRITION_SCREENING)
    if category is None:
        chosen.append(UNGRADED_REFERRAL)
    elif category in REFERRALS:
        chosen.append(REFERRALS[category])
    if nutrition_score <= 2 and NUTRITION_SCREENING not in chosen:
        chosen.append(NUTRITION_SCREENING)
    return [item.to_dict() for item in chosen]


def describe(category: Category | None) -> dict[str, Any]:
    return {"category": category.value if category else None, "source": GUIDELINE}
