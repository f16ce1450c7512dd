"""Synthetic documents with known text: Spanish and English administrative and clinical
documents, made as born-digital PDFs (a text layer), scans (an image only), degraded scans
(turned, blurred, noisy), phone photos of a page, and mixed PDFs. The text drawn is the
ground truth of the OCR evaluation and the answer key of the retrieval questions.

Used by the tests, `benchmarks/documents.py` and to make the sample documents shipped with
the workload (`python -m tests.document_corpus samples`). Needs reportlab (a dev
dependency) and Debian's DejaVu fonts.
"""

from __future__ import annotations

import io
import random
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
PAGE_POINTS = (612, 792)  # Letter
SCAN_DPI = 200


@dataclass
class Doc:
    """A document: its pages as lines of text, and facts to check metadata and search by."""

    key: str
    language: str
    kind: str
    pages: list[list[str]]
    title: str
    date: str
    references: list[str] = field(default_factory=list)
    #: Questions a reader would ask whose answer is this document, with the page it is on.
    questions: list[tuple[str, int]] = field(default_factory=list)

    def page_text(self, number: int) -> str:
        return "\n".join(self.pages[number - 1])

    @property
    def text(self) -> str:
        return "\n\n".join("\n".join(lines) for lines in self.pages)


# --- texts --------------------------------------------------------------------------------

MESES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
         "noviembre", "diciembre"]  # fmt: skip
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
SUBJECTS_ES = [
    ("mantenimiento preventivo de locales escolares", "el mantenimiento de los techos y servicios higiénicos"),
    ("contratación de personal docente para el año lectivo", "las plazas vacantes de profesores de primaria"),
    ("distribución de material educativo a las instituciones", "la entrega de cuadernos y textos escolares"),
    ("capacitación en primeros auxilios para el personal", "el curso de reanimación cardiopulmonar básica"),
    ("evaluación de la infraestructura sanitaria del centro de salud", "las filtraciones de agua en la sala de partos"),
    ("programa de vacunación contra la influenza estacional", "la campaña de inmunización de adultos mayores"),
    ("renovación del convenio de transporte escolar", "las rutas de los buses para zonas rurales"),
    ("inventario de equipos de cómputo del área administrativa", "las computadoras que requieren reparación"),
]
#: The same subjects asked about in other words (a reader's question, not the text's).
PARAPHRASES_ES = [
    "¿quién arregla el techo y los baños del colegio?",
    "faltan maestros en las escuelas",
    "libros y útiles para los alumnos",
    "cómo atender a alguien que se desmaya",
    "goteras en el hospital donde nacen los bebés",
    "vacunas para los ancianos contra la gripe",
    "movilidad de los niños que viven en el campo",
    "ordenadores de la oficina que no funcionan",
]
SUBJECTS_EN = [
    ("annual review of the pharmacy stock", "the expired antibiotics found in the storeroom"),
    ("referral for cardiology assessment", "the patient's exertional chest pain and palpitations"),
    ("discharge after community acquired pneumonia", "the course of intravenous ceftriaxone and oral follow up"),
    ("renewal of the cleaning services contract", "the disinfection schedule for the operating theatres"),
    ("staff training on hand hygiene compliance", "the audit showing low compliance in the emergency ward"),
    ("complete blood count and metabolic panel results", "the low haemoglobin and raised creatinine values"),
    ("maintenance of the oxygen supply system", "the pressure alarms in the intensive care unit"),
    ("request for additional wheelchairs for the outpatient clinic", "the long waits at the orthopaedics entrance"),
]
PARAPHRASES_EN = [
    "out of date medicines kept in the store",
    "heart doctor appointment for a man short of breath when walking",
    "lung infection treated in hospital, sent home",
    "who keeps the surgery rooms clean",
    "nurses not washing their hands",
    "anaemia and kidney function in the blood test",
    "alarms going off on the oxygen in intensive care",
    "patients waiting for a wheelchair at the clinic",
]
FILLER_ES = [
    "En atención al documento de la referencia, se informa que el área competente ha revisado la solicitud.",
    "Se recomienda continuar con las acciones previstas en el plan operativo institucional vigente.",
    "Asimismo, se solicita remitir la información complementaria dentro del plazo establecido.",
    "La presente comunicación se emite de conformidad con la normativa aplicable al sector.",
    "Para mayor detalle, se adjunta el cuadro de seguimiento elaborado por la oficina de planificación.",
    "Cabe precisar que los recursos asignados corresponden al presupuesto del ejercicio fiscal.",
    "El personal responsable coordinará las visitas de supervisión con la dirección correspondiente.",
    "Se deberá informar a esta dependencia sobre los avances obtenidos en un plazo no mayor de diez días.",
]
FILLER_EN = [
    "The department has reviewed the request described above and agrees with the proposed course of action.",
    "Please note that the results must be confirmed before any change in treatment is made.",
    "A follow up appointment should be arranged within the next two weeks at the outpatient clinic.",
    "The attached table summarises the findings of the inspection carried out by the facilities team.",
    "Any questions about this report may be addressed to the office of the medical director.",
    "The budget for this work was approved by the board at its last quarterly meeting.",
    "Staff on duty must record every incident in the electronic log before the end of their shift.",
    "We would be grateful if you could confirm receipt of this letter and the enclosed documents.",
]


#: Lines are wrapped to this many characters: they fit the page at 11 points.
LINE_WIDTH = 78


def _wrapped(lines: Sequence[str]) -> list[str]:
    return [piece for line in lines for piece in textwrap.wrap(line, LINE_WIDTH) or [""]]


def spanish(index: int, rng: random.Random, pages: int = 1) -> Doc:
    subject, detail = SUBJECTS_ES[index % len(SUBJECTS_ES)]
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.choice([2024, 2025])
    number = rng.randint(100, 999)
    office = rng.choice(["UGEL.09/AGEBRE", "UGEL.03/AGI", "DRE-LIMA/OAJ", "RED-SALUD/DG"])
    kind = ["oficio", "memorando", "informe", "resolucion"][index % 4]
    heading = {
        "oficio": f"OFICIO N° {number}-{year}-{office}",
        "memorando": f"MEMORANDO N° {number}-{year}-{office}",
        "informe": f"INFORME TÉCNICO N° {number}-{year}-{office}",
        "resolucion": f"RESOLUCIÓN DIRECTORAL N° {number:04d}-{year}-{office}",
    }[kind]
    reference = heading.split(" N° ")[1]
    title = f"Asunto: {subject[0].upper()}{subject[1:]}"
    first = [
        "GOBIERNO REGIONAL DE LIMA",
        "UNIDAD DE GESTIÓN EDUCATIVA LOCAL" if "UGEL" in office else "DIRECCIÓN REGIONAL DE SALUD",
        f"Lima, {day} de {MESES[month - 1]} de {year}",
        heading,
        "Señor Director:",
        title,
        f"Referencia: Expediente N° {year}-{rng.randint(10000, 99999)}",
        f"Me dirijo a usted para informarle sobre {detail}, conforme a lo",
        "coordinado con la oficina de administración y el área de infraestructura.",
    ]
    body = rng.sample(FILLER_ES, 4)
    docs_pages = [first + body]
    for page in range(1, pages):
        docs_pages.append(
            [f"Continuación del {heading.split(' N° ')[0].lower()}, página {page + 1}.", *rng.sample(FILLER_ES, 6)]
        )
    docs_pages[-1] = docs_pages[-1] + ["Atentamente,", "Director de la Unidad"]
    return Doc(
        key=f"es-{index:03d}",
        language="es",
        kind=kind,
        pages=[_wrapped(page) for page in docs_pages],
        title=subject,
        date=f"{year}-{month:02d}-{day:02d}",
        references=[reference],
        questions=[
            (f"¿Qué documento trata sobre {detail}?", 1),
            (reference, 1),
            (PARAPHRASES_ES[index % len(PARAPHRASES_ES)], 1),
        ],
    )


def english(index: int, rng: random.Random, pages: int = 1) -> Doc:
    subject, detail = SUBJECTS_EN[index % len(SUBJECTS_EN)]
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.choice([2024, 2025])
    number = rng.randint(1000, 9999)
    kind = ["lab_report", "referral", "discharge_summary", "memorandum"][index % 4]
    heading = {
        "lab_report": "LABORATORY REPORT",
        "referral": "REFERRAL LETTER",
        "discharge_summary": "DISCHARGE SUMMARY",
        "memorandum": "MEMORANDUM",
    }[kind]
    reference = f"REF-{year}-{number}"
    first = [
        "SAINT MARY GENERAL HOSPITAL",
        heading,
        f"Date: {MONTHS[month - 1]} {day}, {year}",
        f"Reference No. {reference}",
        f"Subject: {subject[0].upper()}{subject[1:]}",
        f"This document concerns {detail}, as discussed",
        "with the clinical team during the weekly meeting.",
    ]
    docs_pages = [first + rng.sample(FILLER_EN, 4)]
    for page in range(1, pages):
        docs_pages.append([f"Continued from page {page}.", *rng.sample(FILLER_EN, 6)])
    docs_pages[-1] = docs_pages[-1] + ["Yours sincerely,", "Medical Director"]
    return Doc(
        key=f"en-{index:03d}",
        language="en",
        kind=kind,
        pages=[_wrapped(page) for page in docs_pages],
        title=subject,
        date=f"{year}-{month:02d}-{day:02d}",
        references=[reference],
        questions=[
            (f"Which document is about {detail}?", 1),
            (reference, 1),
            (PARAPHRASES_EN[index % len(PARAPHRASES_EN)], 1),
        ],
    )


def corpus(count: int = 16, *, seed: int = 7) -> list[Doc]:
    rng = random.Random(seed)
    made = []
    for index in range(count):
        maker = spanish if index % 2 == 0 else english
        made.append(maker(index // 2, rng, pages=1 + (index % 3 == 2)))
    return made


# --- rendering ----------------------------------------------------------------------------


def page_image(lines: Sequence[str], *, dpi: int = SCAN_DPI, header: str | None = None) -> Image.Image:
    """A page as a scanner would see it: black text on white, grey, at ``dpi``."""
    width, height = int(8.5 * dpi), int(11 * dpi)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    size = int(11 / 72 * dpi)
    font = ImageFont.truetype(str(FONT), size)
    y = int(0.9 * dpi)
    if header:
        draw.text((int(0.9 * dpi), int(0.45 * dpi)), header, font=ImageFont.truetype(str(FONT), int(size * 0.8)))
    for line in lines:
        draw.text((int(0.9 * dpi), y), line, font=font, fill=0)
        y += int(size * 1.6)
    return image


def degrade(image: Image.Image, *, angle: float, blur: float, noise: float, seed: int = 0) -> Image.Image:
    """Turned by ``angle`` degrees, blurred, with Gaussian noise of σ ``noise``."""
    turned = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    if blur:
        turned = turned.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(turned, dtype=np.float32)
    pixels += np.random.default_rng(seed).normal(0, noise, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def photographed(image: Image.Image, *, seed: int = 0) -> Image.Image:
    """A phone photo of a page: smaller, slightly turned, lit unevenly, in colour, JPEG-soft."""
    rng = np.random.default_rng(seed)
    small = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)
    turned = small.rotate(float(rng.uniform(-2.5, 2.5)), resample=Image.Resampling.BICUBIC, fillcolor=235)
    pixels = np.asarray(turned, dtype=np.float32)
    ys, xs = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    light = 0.75 + 0.25 * (xs / pixels.shape[1]) * (1 - 0.5 * ys / pixels.shape[0])
    pixels = pixels * light + rng.normal(0, 6, pixels.shape)
    grey = np.clip(pixels, 0, 255).astype(np.uint8)
    colour = np.stack([grey, (grey * 0.97).astype(np.uint8), (grey * 0.9).astype(np.uint8)], axis=-1)
    return Image.fromarray(colour, "RGB")


def jpeg(image: Image.Image, quality: int = 70) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def text_pdf(doc: Doc, *, header: str | None = "Página {page}", footer: bool = True) -> bytes:
    """A born-digital PDF: every page a real text layer, with a running header and footer."""
    from reportlab.lib.utils import ImageReader  # noqa: F401, PLC0415 -- reportlab is a test-only dependency
    from reportlab.pdfbase import pdfmetrics  # noqa: PLC0415 -- as above
    from reportlab.pdfbase.ttfonts import TTFont  # noqa: PLC0415 -- as above
    from reportlab.pdfgen import canvas  # noqa: PLC0415 -- as above

    _register(pdfmetrics, TTFont)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=PAGE_POINTS)
    for number, lines in enumerate(doc.pages, start=1):
        if header:
            pdf.setFont("DejaVu", 8)
            pdf.drawString(72, PAGE_POINTS[1] - 40, "SAINT MARY GENERAL HOSPITAL · Confidential" if doc.language == "en"
                           else "Sistema de Gestión Documental · Uso interno")  # fmt: skip
        if footer:
            pdf.setFont("DejaVu", 8)
            pdf.drawString(PAGE_POINTS[0] / 2 - 20, 30, f"Página {number} de {len(doc.pages)}")
        text = pdf.beginText(72, PAGE_POINTS[1] - 84)
        text.setFont("DejaVu", 11)
        text.setLeading(16)
        for line in lines:
            text.textLine(line)
        pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def image_pdf(images: Sequence[Image.Image], *, invisible_text: Sequence[str | None] | None = None) -> bytes:
    """A PDF of page images (a scanner's output), optionally with an invisible text layer
    over each (someone else's OCR)."""
    from reportlab.lib.utils import ImageReader  # noqa: PLC0415 -- reportlab is a test-only dependency
    from reportlab.pdfbase import pdfmetrics  # noqa: PLC0415 -- as above
    from reportlab.pdfbase.ttfonts import TTFont  # noqa: PLC0415 -- as above
    from reportlab.pdfgen import canvas  # noqa: PLC0415 -- as above

    _register(pdfmetrics, TTFont)
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=PAGE_POINTS)
    for index, image in enumerate(images):
        pdf.drawImage(ImageReader(io.BytesIO(jpeg(image, 60))), 0, 0, width=PAGE_POINTS[0], height=PAGE_POINTS[1])
        hidden = invisible_text[index] if invisible_text else None
        if hidden:
            text = pdf.beginText(72, PAGE_POINTS[1] - 84)
            text.setFont("DejaVu", 11)
            text.setTextRenderMode(3)
            for line in hidden.split("\n"):
                text.textLine(line)
            pdf.drawText(text)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def mixed_pdf(doc: Doc) -> bytes:
    """Page 1 born-digital, the rest scanned: one text layer page, the others images."""
    from pypdf import PdfReader, PdfWriter  # noqa: PLC0415 -- only to splice pages

    digital = PdfReader(io.BytesIO(text_pdf(doc)))
    scanned = PdfReader(io.BytesIO(image_pdf([page_image(lines) for lines in doc.pages])))
    writer = PdfWriter()
    writer.add_page(digital.pages[0])
    for page in scanned.pages[1:]:
        writer.add_page(page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def encrypted_pdf(data: bytes, password: str = "secret") -> bytes:
    from pypdf import PdfWriter  # noqa: PLC0415 -- only to encrypt

    writer = PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user_password=password, owner_password=password + "-owner")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def empty_pdf() -> bytes:
    from pypdf import PdfWriter  # noqa: PLC0415 -- only to write a PDF without pages

    buffer = io.BytesIO()
    PdfWriter().write(buffer)
    return buffer.getvalue()


def _register(pdfmetrics: Any, ttfont: Any) -> None:
    if "DejaVu" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(ttfont("DejaVu", str(FONT)))


# --- the samples shipped with the workload ------------------------------------------------


def write_samples(directory: Path) -> list[str]:
    """Small sample documents for `vigia demo --documents`, one of each kind."""
    docs = corpus(8, seed=11)
    directory.mkdir(parents=True, exist_ok=True)
    made = {
        "oficio-born-digital.pdf": text_pdf(docs[0]),
        "discharge-summary-born-digital.pdf": text_pdf(docs[5]),
        "memorando-scanned.pdf": image_pdf([page_image(lines, dpi=150) for lines in docs[2].pages]),
        "lab-report-degraded-scan.jpg": jpeg(
            degrade(page_image(docs[1].pages[0], dpi=150), angle=2.5, blur=0.8, noise=25, seed=3), 60
        ),
        "informe-phone-photo.jpg": jpeg(photographed(page_image(docs[4].pages[0], dpi=170), seed=5), 75),
    }
    for name, data in made.items():
        (directory / name).write_bytes(data)
    return sorted(made)


if __name__ == "__main__":
    if sys.argv[1:2] == ["samples"]:
        target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("src/vigia/workloads/documents/samples")
        print("\n".join(write_samples(target)))
