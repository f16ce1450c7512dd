"""The pressure-injury decision tables: guideline recommendations and triage."""

from __future__ import annotations

import itertools

import pytest

from vigia.workloads.pressure_injury.braden import RiskBand
from vigia.workloads.pressure_injury.guidelines import Category, describe, recommendations
from vigia.workloads.pressure_injury.triage import Level, triage

CATEGORIES: list[Category | None] = [None, *Category]
HEALING_NUTRITION = (
    "Provide 30–35 kcal/kg/day and 1.25–1.5 g protein/kg/day, adjusted to the individual; "
    "consider a high-calorie, high-protein supplement with arginine, zinc and antioxidants."
)
SCREENING = "Screen for malnutrition and refer to a dietitian when at risk."


def topics(items: list[dict[str, str]]) -> list[str]:
    return [item["topic"] for item in items]


def with_topic(items: list[dict[str, str]], topic: str) -> list[dict[str, str]]:
    return [item for item in items if item["topic"] == topic]


# --- recommendations ------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "band"), list(itertools.product(CATEGORIES, RiskBand)))
@pytest.mark.parametrize("nutrition", [1, 3])
def test_every_case_has_repositioning_and_a_support_surface_from_the_2019_guideline(
    category: Category | None, band: RiskBand, nutrition: int
) -> None:
    items = recommendations(category, band, nutrition)

    assert topics(items)[:2] == ["repositioning", "support_surface"]
    assert all(set(item) == {"topic", "text", "reference"} for item in items)
    assert all(item["text"] for item in items)
    assert all("EPUAP/NPIAP/PPPIA International Guideline 2019" in item["reference"] for item in items)
    assert len(topics(items)) == len({(item["topic"], item["text"]) for item in items})  # no row twice


def test_stage_4_at_very_high_risk_in_full() -> None:
    items = recommendations(Category.STAGE_4, RiskBand.VERY_HIGH, 3)

    assert topics(items) == [
        "repositioning",
        "support_surface",
        "wound_care",
        "infection",
        "pain",
        "nutrition",
        "referral",
    ]
    assert items[1]["text"].startswith("For a stage 4 injury, use an air-fluidised")
    assert with_topic(items, "referral") == [
        {
            "topic": "referral",
            "text": "Refer at once to a wound-care specialist and for a surgical opinion.",
            "reference": "EPUAP/NPIAP/PPPIA International Guideline 2019, chapter 'Pressure Injury Surgery'",
        }
    ]
    assert [item["text"] for item in with_topic(items, "nutrition")] == [HEALING_NUTRITION]
    assert "30–35 kcal/kg" in HEALING_NUTRITION


@pytest.mark.parametrize("category", [category for category in Category if category is not Category.STAGE_1])
def test_every_injury_beyond_stage_1_gets_nutrition_for_healing(category: Category) -> None:
    items = recommendations(category, RiskBand.NONE, 4)

    assert [item["text"] for item in with_topic(items, "nutrition")] == [HEALING_NUTRITION]


@pytest.mark.parametrize("band", list(RiskBand))
@pytest.mark.parametrize("nutrition", [1, 2, 3, 4])
def test_stage_1_never_gets_nutrition_for_healing(band: RiskBand, nutrition: int) -> None:
    items = recommendations(Category.STAGE_1, band, nutrition)

    assert all("kcal" not in item["text"] for item in items)
    assert not with_topic(items, "referral")


@pytest.mark.parametrize("band", list(RiskBand))
def test_an_ungraded_wound_is_referred_to_a_clinician(band: RiskBand) -> None:
    items = recommendations(None, band, 3)

    assert with_topic(items, "referral") == [
        {
            "topic": "referral",
            "text": "No automatic grading: a clinician must assess and classify the wound in person.",
            "reference": (
                "EPUAP/NPIAP/PPPIA International Guideline 2019, chapter 'Classification of Pressure Injuries'"
            ),
        }
    ]
    assert not with_topic(items, "wound_care")


def test_unstageable_wound_care_warns_to_leave_stable_heel_eschar() -> None:
    items = recommendations(Category.UNSTAGEABLE, RiskBand.MODERATE, 3)

    wound_care = with_topic(items, "wound_care")
    assert len(wound_care) == 1
    assert wound_care[0]["text"].startswith("Do not remove stable, dry, adherent eschar on heels")
    assert topics(items) == [
        "repositioning",
        "support_surface",
        "wound_care",
        "classification",
        "nutrition",
        "referral",
    ]


@pytest.mark.parametrize(
    ("category", "band", "nutrition", "expected"),
    [
        # Screening follows a poor Braden nutrition subscale whatever the risk band.
        (None, RiskBand.NONE, 2, [SCREENING]),
        (None, RiskBand.NONE, 1, [SCREENING]),
        (None, RiskBand.NONE, 3, []),
        (None, RiskBand.MILD, 4, []),
        (Category.STAGE_1, RiskBand.MILD, 2, [SCREENING]),
        (Category.STAGE_1, RiskBand.NONE, 3, []),
        # …and a moderate or higher risk band.
        (None, RiskBand.MODERATE, 4, [SCREENING]),
        (Category.STAGE_1, RiskBand.VERY_HIGH, 4, [SCREENING]),
        # Injuries that need healing nutrition also get screened when nutrition is poor.
        (Category.STAGE_3, RiskBand.NONE, 2, [HEALING_NUTRITION, SCREENING]),
        (Category.STAGE_3, RiskBand.NONE, 3, [HEALING_NUTRITION]),
        (Category.STAGE_2, RiskBand.VERY_HIGH, 4, [HEALING_NUTRITION]),
    ],
)
def test_nutrition_rows(category: Category | None, band: RiskBand, nutrition: int, expected: list[str]) -> None:
    items = recommendations(category, band, nutrition)

    assert [item["text"] for item in with_topic(items, "nutrition")] == expected


@pytest.mark.parametrize("band", list(RiskBand))
def test_stage_2_takes_the_risk_band_surface_and_stage_3_its_own(band: RiskBand) -> None:
    ungraded = recommendations(None, band, 3)[1]
    stage_2 = recommendations(Category.STAGE_2, band, 3)[1]
    stage_3 = recommendations(Category.STAGE_3, band, 3)[1]

    assert stage_2 == ungraded
    assert stage_3["text"].startswith("For a stage 3 injury")
    assert stage_3 != ungraded


def test_repositioning_gets_more_frequent_as_risk_rises() -> None:
    texts = {band: recommendations(None, band, 3)[0]["text"] for band in RiskBand}

    assert texts[RiskBand.VERY_HIGH].startswith("Reposition at least every 2 hours")
    assert texts[RiskBand.HIGH].startswith("Reposition every 2 hours")
    assert texts[RiskBand.MODERATE].startswith("Reposition every 2 to 3 hours")
    assert texts[RiskBand.MILD].startswith("Reposition at least every 4 hours")
    assert texts[RiskBand.NONE].startswith("Encourage mobility")


def test_describe_names_the_category_and_the_source() -> None:
    assert describe(Category.DEEP_TISSUE) == {
        "category": "deep_tissue_injury",
        "source": "EPUAP/NPIAP/PPPIA International Guideline 2019",
    }
    assert describe(None)["category"] is None


def test_severity_orders_the_categories() -> None:
    assert sorted(Category, key=lambda category: category.severity) == [
        Category.STAGE_1,
        Category.STAGE_2,
        Category.DEEP_TISSUE,
        Category.STAGE_3,
        Category.UNSTAGEABLE,
        Category.STAGE_4,
    ]


# --- triage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "graded", "band", "assessable", "level"),
    [
        (Category.STAGE_4, True, RiskBand.NONE, True, Level.EMERGENCY),
        (Category.STAGE_4, True, RiskBand.VERY_HIGH, False, Level.EMERGENCY),
        (Category.UNSTAGEABLE, True, RiskBand.MILD, True, Level.EMERGENCY),
        (Category.STAGE_3, True, RiskBand.NONE, True, Level.URGENT),
        (Category.DEEP_TISSUE, True, RiskBand.MILD, True, Level.URGENT),
        (Category.STAGE_2, True, RiskBand.HIGH, True, Level.URGENT),
        (Category.STAGE_2, True, RiskBand.VERY_HIGH, True, Level.URGENT),
        (Category.STAGE_2, True, RiskBand.MODERATE, True, Level.ROUTINE),
        (Category.STAGE_2, True, RiskBand.MILD, True, Level.ROUTINE),
        (Category.STAGE_1, True, RiskBand.VERY_HIGH, True, Level.ROUTINE),
        (None, False, RiskBand.HIGH, True, Level.URGENT),
        (None, False, RiskBand.VERY_HIGH, True, Level.URGENT),
        (None, False, RiskBand.MILD, True, Level.ROUTINE),
        (None, True, RiskBand.VERY_HIGH, False, Level.URGENT),
        (None, True, RiskBand.MODERATE, False, Level.ROUTINE),
        (None, True, RiskBand.NONE, True, Level.ROUTINE),
        (None, True, RiskBand.VERY_HIGH, True, Level.ROUTINE),
    ],
)
def test_triage_level(category: Category | None, graded: bool, band: RiskBand, assessable: bool, level: Level) -> None:
    assert triage(category, graded=graded, band=band, assessable=assessable).level is level


def test_no_injury_found_at_no_risk_is_routine_for_that_one_reason() -> None:
    decided = triage(None, graded=True, band=RiskBand.NONE, assessable=True)

    assert decided.level is Level.ROUTINE
    assert decided.reasons == ("no pressure injury detected",)
    assert decided.to_dict() == {"level": "routine", "reasons": ["no pressure injury detected"]}


def test_stage_2_at_very_high_risk_gives_every_reason_that_fired_in_order() -> None:
    decided = triage(Category.STAGE_2, graded=True, band=RiskBand.VERY_HIGH, assessable=True)

    assert decided.level is Level.URGENT
    assert decided.reasons == (
        "stage 2 injury in a patient at very high risk",
        "stage 2 injury: follow the care plan",
        "Braden risk very high: prevention plan",
    )


def test_an_ungraded_poor_photo_at_high_risk_gives_every_reason_that_fired_in_order() -> None:
    decided = triage(None, graded=False, band=RiskBand.HIGH, assessable=False)

    assert decided.level is Level.URGENT
    assert decided.reasons == (
        "no automatic grading and the patient is at high risk: assess in person",
        "the photo cannot be assessed and the patient is at high risk",
        "no automatic grading: a clinician must grade the wound",
        "the photo is too poor to assess: take it again",
        "Braden risk high: prevention plan",
    )


@pytest.mark.parametrize(
    ("category", "reason"),
    [
        (Category.STAGE_4, "stage 4 pressure injury: specialist at once"),
        (Category.UNSTAGEABLE, "unstageable pressure injury: specialist at once"),
        (Category.STAGE_3, "stage 3: specialist review within 24 hours"),
        (Category.DEEP_TISSUE, "deep tissue injury: specialist review within 24 hours"),
        (Category.STAGE_1, "stage 1 injury: follow the care plan"),
    ],
)
def test_the_single_reason_of_each_category_at_no_risk(category: Category, reason: str) -> None:
    assert triage(category, graded=True, band=RiskBand.NONE, assessable=True).reasons == (reason,)


def test_levels_rank_emergency_over_urgent_over_routine() -> None:
    assert Level.EMERGENCY.rank > Level.URGENT.rank > Level.ROUTINE.rank
