"""SNOMED CT concepts for the codes a note supports, from a terminology the user licenses.

SNOMED CT is licensed (a national release centre or SNOMED International's affiliate
licence), so Vigía ships none and invents none: without a configured release the SNOMED
stage is skipped and the report says "no terminology configured". Pointed at a release
in RF2 format (``VIGIA_CODING_SNOMED_RELEASE``: the directory of a US Edition, or any
edition with an ICD-10-CM extended map), `Rf2Release` reads the map from SNOMED CT to
ICD-10-CM and the English descriptions, and answers which concepts map to a code.

A `Terminology` is anything with ``name`` and ``concepts_for``: another source (a
terminology server) plugs in the same way.
"""

from __future__ import annotations

import csv
import functools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

#: The US Edition's SNOMED CT to ICD-10-CM extended map reference set.
ICD10CM_MAP_REFSET = "6011000124106"
#: RF2 description types: fully specified name, synonym (the preferred term is a synonym).
FULLY_SPECIFIED_NAME = "900000000000003001"
MAP_FILE_GLOB = "**/der2_iisssccRefset_ExtendedMapSnapshot*.txt"
DESCRIPTION_FILE_GLOB = "**/sct2_Description_Snapshot-en*.txt"


class TerminologyUnavailable(Exception):
    """The configured release cannot be read (the message says what is wrong)."""


@dataclass(frozen=True, slots=True)
class SnomedConcept:
    concept_id: str
    term: str
    #: The ICD-10-CM code the concept maps to, as the release's map says.
    icd10: str
    #: The map rule's advice ("ALWAYS I10", "IF ... CHOOSE ..."): when the map holds.
    advice: str

    def to_dict(self) -> dict[str, str]:
        return {"concept_id": self.concept_id, "term": self.term, "icd10": self.icd10, "map_advice": self.advice}


class Terminology(Protocol):
    name: str

    def concepts_for(self, icd10_code: str) -> list[SnomedConcept]: ...


class Rf2Release:
    """A SNOMED CT release in RF2 format, read once: its ICD-10-CM map and the terms of
    the concepts in it."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise TerminologyUnavailable(f"the SNOMED CT release {self.directory} is not a directory")
        map_file = self._one(MAP_FILE_GLOB, "extended map (der2_iisssccRefset_ExtendedMapSnapshot)")
        description_file = self._one(DESCRIPTION_FILE_GLOB, "English descriptions (sct2_Description_Snapshot-en)")
        self.name = f"SNOMED CT ({map_file.stem.rsplit('_', 1)[-1]})"
        self._by_code: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in self._rows(map_file):
            if row.get("active") == "1" and row.get("refsetId") == ICD10CM_MAP_REFSET and row.get("mapTarget"):
                target = row["mapTarget"].strip().upper()
                self._by_code[target].append((row["referencedComponentId"], row.get("mapAdvice", "")))
        wanted = {concept for rows in self._by_code.values() for concept, _ in rows}
        self._terms: dict[str, str] = {}
        for row in self._rows(description_file):
            concept = row.get("conceptId", "")
            if row.get("active") == "1" and concept in wanted:
                fully_specified = row.get("typeId") == FULLY_SPECIFIED_NAME
                if fully_specified or concept not in self._terms:
                    self._terms[concept] = row.get("term", "")
        if not self._by_code:
            raise TerminologyUnavailable(
                f"{map_file.name} holds no active rows of the ICD-10-CM map (refset {ICD10CM_MAP_REFSET})"
            )

    def _one(self, pattern: str, what: str) -> Path:
        found = sorted(self.directory.glob(pattern))
        if not found:
            raise TerminologyUnavailable(f"the SNOMED CT release {self.directory} has no {what} file")
        return found[0]

    @staticmethod
    def _rows(path: Path) -> Iterator[dict[str, str]]:
        with path.open(encoding="utf-8", newline="") as handle:
            yield from csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)

    def concepts_for(self, icd10_code: str) -> list[SnomedConcept]:
        seen: set[str] = set()
        found = []
        for concept, advice in self._by_code.get(icd10_code.upper(), []):
            if concept not in seen:
                seen.add(concept)
                found.append(SnomedConcept(concept, self._terms.get(concept, ""), icd10_code, advice))
        return found


@functools.cache
def release(directory: Path) -> Rf2Release:
    """The release at ``directory``, read once per process."""
    return Rf2Release(directory)
