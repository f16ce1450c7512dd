"""The Braden scale: totals, risk bands, validation of each subscale, other risk factors."""

from __future__ import annotations

from typing import Any

import pytest

from vigia.exceptions import InvalidInput
from vigia.workloads.pressure_injury import braden
from vigia.workloads.pressure_injury.braden import RiskBand, band_of, risk_factors, score

NAMES = ("sensory_perception", "moisture", "activity", "mobility", "nutrition", "friction_shear")


def subscales(*values: int) -> dict[str, Any]:
    """The six subscales in the scale's order: sensory, moisture, activity, mobility, nutrition, friction."""
    assert len(values) == 6
    return dict(zip(NAMES, values, strict=True))


VALID = subscales(3, 3, 3, 3, 3, 2)


def refusal(values: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        score(values)
    return caught.value


# --- totals and bands -----------------------------------------------------------------------


def test_the_subscales_are_the_six_of_the_scale_in_order() -> None:
    assert tuple(subscale.name for subscale in braden.SUBSCALES) == NAMES
    assert {subscale.name: (subscale.lowest, subscale.highest) for subscale in braden.SUBSCALES} == {
        "sensory_perception": (1, 4),
        "moisture": (1, 4),
        "activity": (1, 4),
        "mobility": (1, 4),
        "nutrition": (1, 4),
        "friction_shear": (1, 3),
    }


def test_the_lowest_total_is_6_and_very_high_risk() -> None:
    result = score(subscales(1, 1, 1, 1, 1, 1))

    assert result.total == 6
    assert result.band is RiskBand.VERY_HIGH


def test_the_highest_total_is_23_and_no_risk() -> None:
    result = score(subscales(4, 4, 4, 4, 4, 3))

    assert result.total == 23
    assert result.band is RiskBand.NONE


@pytest.mark.parametrize(
    ("values", "total", "band"),
    [
        ((1, 1, 1, 2, 2, 2), 9, RiskBand.VERY_HIGH),
        ((2, 2, 2, 2, 1, 1), 10, RiskBand.HIGH),
        ((2, 2, 2, 2, 2, 2), 12, RiskBand.HIGH),
        ((3, 2, 2, 2, 2, 2), 13, RiskBand.MODERATE),
        ((3, 3, 2, 2, 2, 2), 14, RiskBand.MODERATE),
        ((3, 3, 3, 2, 2, 2), 15, RiskBand.MILD),
        ((4, 4, 3, 3, 2, 2), 18, RiskBand.MILD),
        ((4, 4, 3, 3, 3, 2), 19, RiskBand.NONE),
    ],
)
def test_each_band_boundary_falls_on_the_documented_total(values: tuple[int, ...], total: int, band: RiskBand) -> None:
    result = score(subscales(*values))

    assert result.total == total
    assert result.band is band


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (6, "very_high"),
        (9, "very_high"),
        (10, "high"),
        (12, "high"),
        (13, "moderate"),
        (14, "moderate"),
        (15, "mild"),
        (18, "mild"),
        (19, "none"),
        (23, "none"),
    ],
)
def test_band_of_each_boundary_total(total: int, band: str) -> None:
    assert band_of(total).value == band


@pytest.mark.parametrize("total", [5, 24])
def test_band_of_a_total_the_scale_cannot_give_is_refused(total: int) -> None:
    with pytest.raises(ValueError, match=f"between 6 and 23, got {total}"):
        band_of(total)


def test_risk_bands_rank_from_very_high_to_none() -> None:
    assert [band.rank for band in RiskBand] == [0, 1, 2, 3, 4]
    assert RiskBand.VERY_HIGH.rank < RiskBand.NONE.rank


def test_a_whole_float_counts_as_that_whole_number() -> None:
    result = score({**VALID, "moisture": 2.0})

    assert result.subscales["moisture"] == 2
    assert type(result.subscales["moisture"]) is int
    assert result.total == 16


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0, 5])
def test_a_value_outside_every_subscale_range_is_refused_naming_it(name: str, value: int) -> None:
    error = refusal({**VALID, name: value})

    highest = 3 if name == "friction_shear" else 4
    assert error.message.startswith(f"Braden subscale {name!r} (")
    assert error.message.endswith(f"is scored 1–{highest}, got {value}")
    assert error.details == {"field": f"braden.{name}"}


def test_friction_and_shear_is_scored_one_to_three_so_four_is_refused() -> None:
    error = refusal({**VALID, "friction_shear": 4})

    assert error.message == "Braden subscale 'friction_shear' (Friction and shear) is scored 1–3, got 4"
    assert error.details["field"] == "braden.friction_shear"


@pytest.mark.parametrize("name", [name for name in NAMES if name != "friction_shear"])
def test_four_is_the_top_of_the_other_subscales(name: str) -> None:
    assert score({**VALID, name: 4}).subscales[name] == 4


@pytest.mark.parametrize("name", NAMES)
def test_a_missing_subscale_is_named(name: str) -> None:
    values = {key: value for key, value in VALID.items() if key != name}

    error = refusal(values)

    assert error.message.startswith(f"Braden subscale {name!r} (")
    assert error.message.endswith(") is missing")
    assert error.details["field"] == f"braden.{name}"


def test_a_null_subscale_counts_as_missing() -> None:
    error = refusal({**VALID, "nutrition": None})

    assert error.message == "Braden subscale 'nutrition' (Nutrition) is missing"
    assert error.details["field"] == "braden.nutrition"


@pytest.mark.parametrize(("value", "shown"), [(2.5, "2.5"), ("3", "'3'"), (True, "True"), ([3], "[3]")])
def test_a_value_that_is_not_a_whole_number_is_refused(value: Any, shown: str) -> None:
    error = refusal({**VALID, "mobility": value})

    assert error.message == f"Braden subscale 'mobility' must be a whole number, got {shown}"
    assert error.details["field"] == "braden.mobility"


def test_an_unknown_subscale_is_named_with_the_six_known_ones() -> None:
    error = refusal({**VALID, "hydration": 2})

    assert error.message == (
        "'braden' has unknown subscale 'hydration' (the six are: activity, friction_shear, mobility, "
        "moisture, nutrition, sensory_perception)"
    )
    assert error.details["field"] == "braden.hydration"


@pytest.mark.parametrize("values", [None, [3, 3, 3, 3, 3, 2], "18", 18])
def test_anything_but_a_mapping_is_refused(values: Any) -> None:
    error = refusal(values)

    assert error.message == "'braden' must be an object with the six Braden subscales"
    assert error.details["field"] == "braden"


# --- other risk factors -------------------------------------------------------------------------


def test_flags_set_to_true_are_reported_in_the_guideline_order() -> None:
    context = {"smoker": True, "diabetes": True, "incontinence": False, "sepsis": "yes", "sedation": 1}

    assert risk_factors(context) == [
        {"factor": "diabetes", "label": "diabetes mellitus"},
        {"factor": "smoker", "label": "smoking"},
    ]


def test_every_flag_has_its_label() -> None:
    flags = [
        "diabetes",
        "incontinence",
        "vascular_disease",
        "previous_pressure_injury",
        "smoker",
        "sepsis",
        "reduced_perfusion",
        "sedation",
    ]

    found = risk_factors(dict.fromkeys(flags, True))

    assert [item["factor"] for item in found] == flags
    assert [item["label"] for item in found] == [
        "diabetes mellitus",
        "incontinence",
        "peripheral vascular disease",
        "a previous pressure injury",
        "smoking",
        "sepsis or fever",
        "reduced perfusion or oxygenation",
        "sedation or reduced consciousness",
    ]


def test_age_70_is_a_risk_factor_and_69_is_not() -> None:
    assert risk_factors({"age": 70}) == [{"factor": "age", "label": "age 70 (70 or over)"}]
    assert risk_factors({"age": 69}) == []
    assert risk_factors({"age": 84.6}) == [{"factor": "age", "label": "age 84 (70 or over)"}]


def test_a_low_body_mass_index_is_a_risk_factor() -> None:
    assert risk_factors({"bmi": 17.2}) == [{"factor": "low_bmi", "label": "body-mass index 17.2 (under 18.5)"}]
    assert risk_factors({"bmi": 18.5}) == []


def test_a_low_serum_albumin_is_a_risk_factor() -> None:
    assert risk_factors({"albumin": 3.1}) == [{"factor": "low_albumin", "label": "serum albumin 3.1 g/dL (under 3.5)"}]
    assert risk_factors({"albumin": 3.5}) == []


def test_measurements_come_after_the_flags() -> None:
    context = {"albumin": 2.8, "bmi": 16, "age": 91, "incontinence": True}

    assert [item["factor"] for item in risk_factors(context)] == ["incontinence", "age", "low_bmi", "low_albumin"]


@pytest.mark.parametrize("value", ["80", None, True, [80], {"years": 80}])
def test_measurements_that_are_not_numbers_are_ignored(value: Any) -> None:
    assert risk_factors({"age": value, "bmi": value, "albumin": value}) == []


@pytest.mark.parametrize("context", [None, "diabetic", [("diabetes", True)], 3])
def test_a_context_that_is_not_a_mapping_has_no_risk_factors(context: Any) -> None:
    assert risk_factors(context) == []


# --- output -------------------------------------------------------------------------------------


def test_to_dict_gives_subscales_total_band_and_the_level_of_each_subscale() -> None:
    assert score(subscales(1, 2, 3, 4, 2, 3)).to_dict() == {
        "subscales": {
            "sensory_perception": 1,
            "moisture": 2,
            "activity": 3,
            "mobility": 4,
            "nutrition": 2,
            "friction_shear": 3,
        },
        "total": 15,
        "band": "mild",
        "levels": {
            "sensory_perception": "completely limited",
            "moisture": "very moist",
            "activity": "walks occasionally",
            "mobility": "no limitation",
            "nutrition": "probably inadequate",
            "friction_shear": "no apparent problem",
        },
    }


def test_to_dict_levels_at_the_bottom_of_every_subscale() -> None:
    assert score(subscales(1, 1, 1, 1, 1, 1)).to_dict()["levels"] == {
        "sensory_perception": "completely limited",
        "moisture": "constantly moist",
        "activity": "bedfast",
        "mobility": "completely immobile",
        "nutrition": "very poor",
        "friction_shear": "problem",
    }


# --- known defects (strict: these start failing once fixed; drop the mark then) ------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_number_is_refused_as_invalid_input(value: float) -> None:
    error = refusal({**VALID, "moisture": value})

    assert error.details["field"] == "braden.moisture"
