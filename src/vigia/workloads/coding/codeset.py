"""The ICD-10-CM code set: the CDC's release as the `simple-icd-10-cm` package ships it (the
April 2026 release: 74,736 billable codes), loaded once per process where codes are read."""

from __future__ import annotations

import functools
import re
from typing import Any


@functools.cache
def codeset() -> Any:
    import simple_icd_10_cm  # noqa: PLC0415 -- 3 s and 180 MB: loaded once, where codes are inferred

    return simple_icd_10_cm


def billable(code: str) -> bool:
    icd = codeset()
    return bool(icd.is_valid_item(code) and icd.is_leaf(code))


def describe(code: str) -> str:
    icd = codeset()
    return str(icd.get_description(code)) if icd.is_valid_item(code) else "not an ICD-10-CM code"


def normalise_code(code: str) -> str:
    """ "e1122" or "E11.22" → "E11.22"."""
    bare = code.strip().upper().replace(".", "")
    return bare if len(bare) <= 3 else f"{bare[:3]}.{bare[3:]}"


#: The form of a code: a letter, two characters, and up to four more after the dot.
CODE_FORMAT = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$")


@functools.cache
def _known() -> frozenset[str]:
    """Every code and category of the release, without dots, from the package's code list
    (98,504 lines, 0.05 s): checking a billed code needs no more than that."""
    from importlib import resources  # noqa: PLC0415 -- only here

    data = resources.files("simple_icd_10_cm") / "data"
    lists = sorted(item.name for item in data.iterdir() if item.name.startswith("code-list"))
    if not lists:
        return frozenset(code.replace(".", "") for code in codeset().get_all_codes(with_dots=False))
    return frozenset(line.strip() for line in (data / lists[-1]).read_text(encoding="utf-8").splitlines())


def known_code(code: str) -> bool:
    """Whether ``code`` ("E11.22", a category like "E11" too) is in the code set."""
    return code.replace(".", "").upper() in _known()
