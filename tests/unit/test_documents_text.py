"""The document workload's text handling, by value: cleaning, chunking, metadata, judging a
text layer, query terms and snippets. No files, no OCR, no model."""

from __future__ import annotations

import itertools

import pytest

from vigia.workloads.documents import metadata
from vigia.workloads.documents.chunking import chunk, sentence_ends, spans
from vigia.workloads.documents.cleaning import clean_pages, fold, normalise

SPANISH = """GOBIERNO REGIONAL DE LIMA
Lima, 21 de abril de 2025
OFICIO N° 123-2025-UGEL.09/AGEBRE
Señor: Director de la I.E. N° 20188
Asunto: Remisión del informe sobre mantenimiento preventivo de locales escolares
Referencia: Resolución Directoral N° 0456-2025-UGEL.09
Es grato dirigirme a usted para remitir el informe técnico del mantenimiento preventivo de los
locales escolares. El plazo vence el 30/05/2025. Se adjunta el expediente N° 2025-0012345."""

ENGLISH = """SAINT MARY GENERAL HOSPITAL
DISCHARGE SUMMARY
Date: January 9, 2025
Reference No. REF-2025-4471
The patient was admitted on 03/14/2024 with community acquired pneumonia and was discharged
on 2025-01-09 after a course of intravenous antibiotics."""


# --- cleaning -------------------------------------------------------------------------------


def test_words_broken_at_line_ends_are_joined_and_spaces_made_regular() -> None:
    cleaned = clean_pages(["La adminis-\ntración   del\u00a0local\tescolar."])
    assert cleaned.text == "La administración del local escolar."


def test_normalisation_undoes_ligatures_and_invisible_characters_but_keeps_ordinals() -> None:
    assert normalise("ﬁnal\u00adly o\ufb00ice") == "finally office"
    assert normalise("N.º 12, 1.ª vez, 20 °C") == "N.º 12, 1.ª vez, 20 °C"
    assert normalise("line\r\nnext\rlast") == "line\nnext\nlast"


def test_headers_footers_and_page_numbers_repeated_on_every_page_are_removed() -> None:
    pages = [
        f"MINISTERIO DE SALUD\nHospital Regional\nTexto propio de la página {number}.\nPágina {number} de 3"
        for number in range(1, 4)
    ]
    cleaned = clean_pages(pages)
    assert "MINISTERIO" not in cleaned.text
    assert "Página" not in cleaned.text
    assert "Texto propio de la página 2." in cleaned.text
    assert "MINISTERIO DE SALUD" in cleaned.removed_lines


def test_a_line_on_only_one_page_is_not_a_header() -> None:
    cleaned = clean_pages(["OFICIO N° 1\nTexto uno.", "Otra cosa\nTexto dos."])
    assert "OFICIO N° 1" in cleaned.text


def test_page_spans_give_each_page_its_text() -> None:
    pages = ["Primera página con texto.", "", "Tercera página."]
    cleaned = clean_pages(pages)
    assert [cleaned.text[start:end] for start, end in cleaned.page_spans] == pages
    assert cleaned.page_of(cleaned.text.index("Tercera")) == 3
    assert cleaned.page_of(0) == 1


def test_folding_removes_case_and_accents() -> None:
    assert fold("Resolución DIRECTORAL Niño") == "resolucion directoral nino"


# --- chunking -------------------------------------------------------------------------------


def test_sentences_do_not_end_at_abbreviations() -> None:
    text = "El Sr. Pérez y la Dra. Quispe firmaron el acta. Se aprobó el informe N° 12. Fin."
    ends = sentence_ends(text)
    assert [text[:end].rsplit(maxsplit=1)[-1] for end in ends] == ["acta.", "12.", "Fin."]


def test_chunks_end_on_sentences_overlap_by_about_100_characters_and_know_their_pages() -> None:
    sentence = "Se revisó el expediente del local escolar y se encontraron observaciones menores. "
    pages = [sentence * 12, sentence * 12]
    cleaned = clean_pages(pages)
    chunks = chunk(cleaned, size=500, overlap=100)
    assert len(chunks) > 4
    for item in chunks:
        assert item.text == cleaned.text[item.start : item.end]
        assert len(item.text) <= 500
    for before, after in itertools.pairwise(chunks):
        overlap = before.end - after.start
        assert 80 <= overlap <= 120, overlap
        assert cleaned.text[before.end - 1] == "."  # a sentence boundary
    assert chunks[0].page_start == 1
    assert chunks[-1].page_end == 2
    assert any(item.page_start == 1 and item.page_end == 2 for item in chunks)


def test_a_text_without_sentence_ends_is_cut_between_words() -> None:
    text = "palabra " * 400
    for start, end in spans(text, size=300, overlap=100):
        assert end - start <= 300
        assert text[start] != " " and (end == len(text.rstrip()) or text[end] == " ")


def test_chunk_size_must_exceed_the_overlap() -> None:
    with pytest.raises(ValueError, match="longer than its overlap"):
        list(spans("texto", size=100, overlap=100))


# --- metadata -------------------------------------------------------------------------------


def test_spanish_metadata_with_sources() -> None:
    cleaned = clean_pages([SPANISH])
    found = metadata.extract(cleaned, language="es", page_count=1)
    assert found["document_type"]["value"] == "oficio"
    assert found["title"]["value"].startswith("Remisión del informe sobre mantenimiento")
    assert found["date"]["value"] == "2025-04-21"
    assert [item["value"] for item in found["dates"]] == ["2025-04-21", "2025-05-30"]
    numbers = [item["number"] for item in found["references"]]
    assert numbers == ["123-2025-UGEL.09/AGEBRE", "0456-2025-UGEL.09", "2025-0012345"]
    for field in (found["title"], found["date"], *found["references"]):
        source = field["source"]
        assert cleaned.text[source["start"] : source["end"]] == source["text"]
        assert source["page"] == 1
    keywords = [item["value"] for item in found["keywords"]]
    assert "mantenimiento preventivo" in keywords
    assert "grato dirigirme" not in keywords  # letter boilerplate


def test_english_metadata_reads_us_dates_month_first() -> None:
    found = metadata.extract(clean_pages([ENGLISH]), language="en", page_count=1)
    assert found["document_type"]["value"] == "discharge_summary"
    assert [item["value"] for item in found["dates"]] == ["2025-01-09", "2024-03-14", "2025-01-09"]
    assert [item["number"] for item in found["references"]] == ["REF-2025-4471"]


@pytest.mark.parametrize(
    ("written", "language", "iso"),
    [
        ("21 de abril de 2025", "es", "2025-04-21"),
        ("1.º de marzo del 2024", "es", "2024-03-01"),
        ("03/04/2025", "es", "2025-04-03"),
        ("03/04/2025", "en", "2025-03-04"),
        ("25/12/2024", "en", "2024-12-25"),
        ("April 21, 2025", "en", "2025-04-21"),
        ("21 Apr 2025", "en", "2025-04-21"),
        ("2025-04-21", None, "2025-04-21"),
        ("7-1-25", "es", "2025-01-07"),
    ],
)
def test_dates_in_every_written_form_become_iso(written: str, language: str | None, iso: str) -> None:
    found = metadata.dates(clean_pages([f"Fecha: {written}."]), language)
    assert [item["value"] for item in found] == [iso]


def test_impossible_dates_are_not_dates() -> None:
    assert metadata.dates(clean_pages(["31/02/2025 y 45 de abril de 2025"]), "es") == []


@pytest.mark.parametrize(
    ("heading", "kind"),
    [
        ("RESOLUCIÓN DIRECTORAL N° 0456-2025-UGEL.09", "resolucion"),
        ("MEMORÁNDUM N° 12-2024-DG", "memorando"),
        ("INFORME TÉCNICO N° 5-2025", "informe_tecnico"),
        ("CONSTANCIA DE TRABAJO", "constancia"),
        ("LABORATORY REPORT", "lab_report"),
        ("Hoja de referencia", "referral"),
        ("EPICRISIS", "epicrisis"),
    ],
)
def test_document_types_from_their_heading(heading: str, kind: str) -> None:
    found = metadata.document_type(clean_pages([f"{heading}\nTexto del documento con varias palabras."]))
    assert found is not None
    assert found["value"] == kind


# --- the text layer, queries and snippets ----------------------------------------------------


def test_a_garbage_text_layer_is_refused_with_its_reason() -> None:
    from vigia.workloads.documents.extraction import judge_layer  # noqa: PLC0415 -- PDFium: the documents extra

    assert judge_layer("Texto real de una página administrativa, con palabras.", scanned=False, invisible=False).usable
    assert not judge_layer("", scanned=False, invisible=False).usable
    assert "garbage" in (judge_layer("\x01\x02 ¤¤ ■■■ ▲▲ " * 20, scanned=False, invisible=False).reason or "")
    assert "garbage" in (judge_layer("bcdfg hjklm npqrs tvwxz " * 5, scanned=False, invisible=False).reason or "")
    hidden = judge_layer("Un texto invisible sobre una imagen escaneada.", scanned=True, invisible=True)
    assert not hidden.usable
    assert "invisible" in (hidden.reason or "")


def test_query_terms_keep_reference_numbers_as_phrases() -> None:
    from vigia.workloads.documents.search import query_terms  # noqa: PLC0415 -- NumPy: the documents extra

    assert query_terms("Oficio 123-2025-UGEL.09/AGEBRE  ¿mantenimiento?") == [
        ["oficio"],
        ["123", "2025", "ugel", "09", "agebre"],
        ["mantenimiento"],
    ]


def test_snippets_mark_query_words_and_escape_the_rest() -> None:
    from vigia.workloads.documents.search import snippet  # noqa: PLC0415 -- NumPy: the documents extra

    text = "Informe <b>urgente</b> sobre el Mantenimiento preventivo de la escuela N° 20188."
    shown = snippet(text, ["mantenimiento", "20188"])
    assert "<mark>Mantenimiento</mark>" in shown
    assert "<mark>20188</mark>" in shown
    assert "&lt;b&gt;urgente&lt;/b&gt;" in shown
    assert "<b>" not in shown
