"""ICD-10-CM rules for the other chapters: respiratory (COPD, asthma by severity, pneumonia,
influenza, respiratory failure with hypoxia or hypercapnia), infections (sepsis with its
organism and severity, urinary infections), conditions with a side (cellulitis,
osteoarthritis, hip fracture by site with its 7th character), the mind and the nervous system
(dementia and Alzheimer disease by severity, depression, Parkinson disease, epilepsy),
digestive, urinary and blood."""

from __future__ import annotations

import re

from vigia.workloads.coding.findings import Add, Found, Inference, Query, Rule
from vigia.workloads.coding.modifiers import (
    ACUTE,
    ACUTE_ON_CHRONIC,
    AGITATION,
    ASPIRATION,
    ASTHMA_SEVERITY,
    CHRONIC,
    CHRONIC_BLOOD_LOSS,
    DYSKINESIA,
    DYSPHAGIA_PHASES,
    EXACERBATION,
    FACE,
    FLUCTUATIONS,
    FRACTURE_SITES,
    HEMATURIA,
    HIP,
    HYPERCAPNIA,
    HYPOXIA,
    INFLUENZA_IDENTIFIED,
    INTRACTABLE,
    KNEE,
    LOBAR,
    LOWER_LIMB,
    MILD,
    MODERATE,
    NONDISPLACED,
    OPEN_FRACTURE,
    ORGANISMS,
    PERFORATED,
    RECURRENT,
    REMISSION,
    SEASONAL,
    SEVERE,
    SEVERE_SEPSIS,
    SLEEP_OBSTRUCTIVE,
    STATUS_ASTHMATICUS,
    SUBSEQUENT,
    UPPER_LIMB,
    affirmed,
    first_of,
    folded,
    laterality,
)


def _respiratory(found: Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    if found.has("copd"):
        context = folded(found.sentences("copd"))
        if found.has("pneumonia"):
            add("J44.0", "copd", found.mentions("copd", "pneumonia"), ["with acute lower respiratory infection"])
        if affirmed(EXACERBATION, context):
            add("J44.1", "copd", found.mentions("copd"), ["with acute exacerbation"])
        elif not found.has("pneumonia"):
            add("J44.9", "copd", found.mentions("copd"))
        handled.add("copd")
    if found.has("asthma"):
        context = folded(found.sentences("asthma"))
        severity = first_of(ASTHMA_SEVERITY, context, "J45.90")
        course = "2" if STATUS_ASTHMATICUS.search(context) else "1" if affirmed(EXACERBATION, context) else "0"
        code = f"{severity}{course}" if severity != "J45.90" else f"J45.90{ {'0': '9', '1': '1', '2': '2'}[course] }"
        add(code.replace(" ", ""), "asthma", found.mentions("asthma"),
            [{"0": "uncomplicated", "1": "with exacerbation", "2": "status asthmaticus"}[course]])  # fmt: skip
        handled.add("asthma")
    if found.has("influenza"):
        context = folded(found.sentences("influenza"))
        identified = "J10" if INFLUENZA_IDENTIFIED.search(context) else "J11"
        add(f"{identified}.00" if found.has("pneumonia") else f"{identified}.1", "influenza",
            found.mentions("influenza", "pneumonia"))  # fmt: skip
        handled.add("influenza")
    if found.has("pneumonia"):
        context = folded(found.sentences("pneumonia"))
        if found.has("influenza"):
            handled.add("pneumonia")  # with influenza: J10.0-/J11.0- say both
        elif found.has("covid"):
            add("J12.82", "pneumonia", found.mentions("pneumonia"), ["pneumonia due to COVID-19"])
        else:
            code = "J69.0" if ASPIRATION.search(context) else "J18.1" if LOBAR.search(context) else "J18.9"
            add(code, "pneumonia", found.mentions("pneumonia"))
        handled.add("pneumonia")
    if found.has("respiratory_failure"):
        _respiratory_failure(found, add, result)
        handled.add("respiratory_failure")
    if found.has("sleep_apnea"):
        context = " ".join(
            [folded(found.sentences("sleep_apnea")), *(m.text.casefold() for m in found.mentions("sleep_apnea"))]
        )
        add("G47.33" if SLEEP_OBSTRUCTIVE.search(context) else "G47.30", "sleep_apnea", found.mentions("sleep_apnea"))
        handled.add("sleep_apnea")
    if found.has("allergic_rhinitis"):
        context = folded(found.sentences("allergic_rhinitis"))
        add("J30.2" if SEASONAL.search(context) else "J30.9", "allergic_rhinitis", found.mentions("allergic_rhinitis"))
        handled.add("allergic_rhinitis")
    return handled


def _respiratory_failure(found: Found, add: Add, result: Inference) -> None:
    mentions = found.mentions("respiratory_failure")
    context = folded(found.sentences("respiratory_failure"))
    if re.search(r"\b(?:acute on chronic|cronica agudizada|cronica reagudizada|aguda sobre cronica)\b", context):
        acuity = "2"
    elif ACUTE.search(context) or ACUTE_ON_CHRONIC.search(context):
        acuity = "0"
    elif CHRONIC.search(context):
        acuity = "1"
    else:
        add("J96.90", "respiratory_failure", mentions)
        issue = "respiratory failure documented without its acuity (acute, chronic)"
        result.queries.append(Query("respiratory_failure", issue, mentions[0]))
        return
    kinds = [digit for digit, pattern in (("1", HYPOXIA), ("2", HYPERCAPNIA)) if pattern.search(context)]
    if not kinds:
        result.queries.append(Query("respiratory_failure", "respiratory failure: with hypoxia or hypercapnia?",
                                    mentions[0]))  # fmt: skip
    for kind in kinds or ["0"]:
        add(f"J96.{acuity}{kind}", "respiratory_failure", mentions)


def _sided(found: Found, add: Add, result: Inference) -> set[str]:
    """Conditions whose code carries a side: cellulitis of a limb, knee or hip osteoarthritis, hip fracture."""
    handled = set()
    if found.has("cellulitis"):
        context = found.sentences("cellulitis")
        side = laterality(context)
        plain = folded(context)
        if LOWER_LIMB.search(plain):
            code = {"right": "L03.115", "left": "L03.116"}.get(side or "", "L03.119")
        elif UPPER_LIMB.search(plain):
            code = {"right": "L03.113", "left": "L03.114"}.get(side or "", "L03.119")
        elif FACE.search(plain):
            code = "L03.211"
        else:
            code = "L03.90"
        add(code, "cellulitis", found.mentions("cellulitis"))
        if code == "L03.119":
            result.queries.append(
                Query("cellulitis", "cellulitis of a limb: side not documented", found.mentions("cellulitis")[0])
            )
        handled.add("cellulitis")
    if found.has("osteoarthritis"):
        context = found.sentences("osteoarthritis")
        side = laterality(context)
        plain = folded(context)
        if KNEE.search(plain):
            code = {"right": "M17.11", "left": "M17.12", "bilateral": "M17.0"}.get(side or "", "M17.10")
        elif HIP.search(plain):
            code = {"right": "M16.11", "left": "M16.12", "bilateral": "M16.0"}.get(side or "", "M16.10")
        else:
            code = "M19.90"
        add(code, "osteoarthritis", found.mentions("osteoarthritis"))
        if code in ("M17.10", "M16.10"):
            result.queries.append(
                Query("osteoarthritis", "osteoarthritis: side not documented", found.mentions("osteoarthritis")[0])
            )
        handled.add("osteoarthritis")
    if found.has("hip_fracture"):
        _hip_fracture(found, add, result)
        handled.add("hip_fracture")
    if found.has("wrist_fracture"):
        _wrist_fracture(found, add, result)
        handled.add("wrist_fracture")
    return handled


def _wrist_fracture(found: Found, add: Add, result: Inference) -> None:
    """A fracture of the distal radius: Colles' (S52.53-) or unspecified (S52.50-), by side,
    7th character A for an initial encounter of a closed fracture unless the note says otherwise."""
    mentions = found.mentions("wrist_fracture")
    words = folded(" ".join([found.sentences("wrist_fracture"), *(m.text for m in mentions)]))
    side = laterality(words)
    seventh = "D" if SUBSEQUENT.search(words) else "B" if OPEN_FRACTURE.search(words) else "A"
    digit = {"right": "1", "left": "2"}.get(side or "", "9")
    kind = "S52.53" if "colles" in words else "S52.50"
    add(f"{kind}{digit}{seventh}", "wrist_fracture", mentions, [f"side: {side or 'not documented'}"])
    if digit == "9":
        result.queries.append(Query("wrist_fracture", "fracture of the radius: side not documented", mentions[0]))


def _hip_fracture(found: Found, add: Add, result: Inference) -> None:
    """Fracture of the upper femur by site (S72.0- neck, S72.1- trochanteric), side and
    displacement (displaced unless documented otherwise), 7th character A: initial
    encounter of a closed fracture unless the note says otherwise."""
    mentions = found.mentions("hip_fracture")
    words = folded(" ".join([found.sentences("hip_fracture"), *(m.text for m in mentions)]))
    side = laterality(words)
    if side == "bilateral":
        side = None
    site = first_of(FRACTURE_SITES, words, None)
    seventh = "D" if SUBSEQUENT.search(words) else "B" if OPEN_FRACTURE.search(words) else "A"
    sides = {"right": 1, "left": 2}
    if site in ("S72.00", "S72.01", "S72.10"):
        code = f"{site}{ {'right': '1', 'left': '2'}.get(side or '', '9') }{seventh}".replace(" ", "")
    elif site is not None:
        digit = sides.get(side or "", 3) + (3 if NONDISPLACED.search(words) else 0)
        code = f"{site}{digit}{seventh}"
    else:
        code = f"S72.9{ {'right': '1', 'left': '2'}.get(side or '', '0') }X{seventh}".replace(" ", "")
    encounter = {"A": "initial encounter", "D": "subsequent encounter", "B": "open fracture"}[seventh]
    add(code, "hip_fracture", mentions, [f"side: {side or 'not documented'}", f"7th character: {encounter}"])
    if side is None:
        result.queries.append(Query("hip_fracture", "fracture of the femur: side not documented", mentions[0]))


def _infections(found: Found, add: Add, result: Inference) -> set[str]:
    """Sepsis with its organism and severity (R65.2-), and infections of the urinary tract
    (the site's code over N39.0), with the organism when documented."""
    handled: set[str] = set()
    whole = folded(found.text)
    organism = next(((sepsis, other) for sepsis, other, pattern in ORGANISMS if pattern.search(whole)), None)
    if found.has("sepsis") or found.has("septic_shock"):
        mentions = found.mentions("sepsis", "septic_shock")
        words = folded(" ".join([found.sentences("sepsis"), *(m.text for m in mentions)]))
        add(organism[0] if organism else "A41.9", "sepsis", mentions,
            ["organism as documented"] if organism else [])  # fmt: skip
        if found.has("septic_shock"):
            add("R65.21", "septic_shock", found.mentions("septic_shock"), ["with septic shock"])
        elif SEVERE_SEPSIS.search(words):
            add("R65.20", "sepsis", mentions, ["severe sepsis, no septic shock"])
        handled.update(("sepsis", "septic_shock"))
    sites = [key for key in ("pyelonephritis", "cystitis", "uti") if found.has(key)]
    if sites:
        key = sites[0]
        words = folded(found.sentences(key))
        if key == "cystitis":
            acute = ACUTE.search(words) is not None
            code = ("N30.0" if acute else "N30.9") + ("1" if HEMATURIA.search(words) else "0")
        else:
            code = {"pyelonephritis": "N10", "uti": "N39.0"}[key]
        add(code, key, found.mentions(*sites), ["site of the urinary infection"] if key != "uti" else [])
        if organism and not (found.has("sepsis") or found.has("septic_shock")):
            add(organism[1], key, found.mentions(*sites), ["organism of the infection"], 0.8)
        handled.update(sites)
    return handled


def _mind_and_nerves(found: Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    if found.has("alzheimer") or found.has("dementia"):
        keys = [key for key in ("alzheimer", "dementia") if found.has(key)]
        words = folded(" ".join(found.sentences(key) for key in keys))
        severity = "C" if SEVERE.search(words) else "B" if MODERATE.search(words) else "A" if MILD.search(words) else ""
        behaviour = "11" if AGITATION.search(words) else "0"
        if found.has("alzheimer"):
            add("G30.9", "alzheimer", found.mentions("alzheimer"))
            category = "F02"  # dementia in Alzheimer disease: G30.9 first, then F02.- (the Index)
        else:
            category = "F03"
        code = f"{category}.{severity or ('8' if category == 'F02' else '9')}{behaviour}"
        named = {"A": "mild", "B": "moderate", "C": "severe"}.get(severity, "not documented")
        add(code, keys[-1] if category == "F03" else "alzheimer", found.mentions(*keys), [f"severity: {named}"])
        handled.update(keys)
    if found.has("major_depression") or found.has("depression"):
        keys = [key for key in ("major_depression", "depression") if found.has(key)]
        words = folded(" ".join(found.sentences(key) for key in keys))
        if found.has("major_depression") or RECURRENT.search(words):
            recurrent = RECURRENT.search(words) is not None
            if REMISSION.search(words):
                code = "F33.40" if recurrent else "F32.5"
            else:
                level = first_of((("2", SEVERE), ("1", MODERATE), ("0", MILD)), words, "9")
                code = f"{'F33' if recurrent else 'F32'}.{level}"
            add(code, keys[0], found.mentions(*keys))
        else:
            add("F32.A", "depression", found.mentions("depression"))
        handled.update(keys)
    if found.has("generalized_anxiety"):
        add("F41.1", "generalized_anxiety", found.mentions("generalized_anxiety", "anxiety"))
        handled.update(("generalized_anxiety", "anxiety"))
    if found.has("parkinson"):
        words = folded(found.sentences("parkinson"))
        kind = "B" if DYSKINESIA.search(words) else "A"
        add(f"G20.{kind}{'2' if FLUCTUATIONS.search(words) else '1'}", "parkinson", found.mentions("parkinson"))
        handled.update(("parkinson", "parkinsonism"))
    if found.has("epilepsy"):
        words = folded(found.sentences("epilepsy"))
        add("G40.919" if INTRACTABLE.search(words) else "G40.909", "epilepsy", found.mentions("epilepsy"))
        handled.add("epilepsy")
    if found.has("hemiplegia") and not (found.has("stroke") or found.has("history:stroke")):
        side = laterality(found.sentences("hemiplegia"))
        code = {"right": "G81.91", "left": "G81.94"}.get(side or "", "G81.90")
        add(code, "hemiplegia", found.mentions("hemiplegia"), [f"side: {side or 'not documented'}"])
        handled.add("hemiplegia")
    return handled


#: Lower urinary tract symptoms: coded with N40.1 (its use-additional note).
LUTS = ("nocturia", "urinary_frequency", "urinary_urgency", "urinary_hesitancy", "weak_stream")


def _others(found: Found, add: Add, result: Inference) -> set[str]:
    handled = set()
    if found.has("renal_failure") and not (found.has("aki") or found.has("ckd")):
        mention = found.mentions("renal_failure")[0]
        context = folded(found.sentences("renal_failure"))
        if ACUTE.search(context):
            add("N17.9", "renal_failure", found.mentions("renal_failure"), ["acute"])
        elif CHRONIC.search(context):
            add("N18.9", "renal_failure", found.mentions("renal_failure"), ["chronic"])
        else:
            add("N19", "renal_failure", found.mentions("renal_failure"))
            result.queries.append(
                Query("renal_failure", "kidney failure documented without its acuity (acute, chronic)", mention)
            )
        handled.add("renal_failure")
    elif found.has("renal_failure"):
        handled.add("renal_failure")
    if found.has("iron_deficiency_anemia"):
        words = folded(found.sentences("iron_deficiency_anemia"))
        code = "D50.0" if CHRONIC_BLOOD_LOSS.search(words) else "D50.9"
        add(code, "iron_deficiency_anemia", found.mentions("iron_deficiency_anemia", "anemia"),
            ["secondary to chronic blood loss"] if code == "D50.0" else [])  # fmt: skip
        handled.update(("iron_deficiency_anemia", "anemia"))
    elif found.has("anemia") and not found.has("ckd"):
        result.queries.append(Query("anemia", "anemia documented without its type", found.mentions("anemia")[0]))
    if found.has("bph"):
        symptoms = [key for key in LUTS if found.has(key)]
        words = folded(found.sentences("bph"))
        with_luts = symptoms or re.search(
            r"\b(?:luts|stui|lower urinary tract symptoms|sintomas del tracto urinario"
            r" inferior|prostatismo|sintomas obstructivos)\b",
            words,
        )
        add("N40.1" if with_luts else "N40.0", "bph", found.mentions("bph"),
            ["with lower urinary tract symptoms"] if with_luts else [])  # fmt: skip
        handled.add("bph")
    if found.has("cholelithiasis") or found.has("cholecystitis"):
        words = folded(
            found.sentences("cholecystitis") + " " + " ".join(m.text for m in found.mentions("cholecystitis"))
        )
        calculous = found.has("cholelithiasis") or re.search(r"\b(?:calculous|litiasica|calculosa)\b", words)
        alithiasic = re.search(r"\b(?:acalculous|alitiasica|acalculosa)\b", words)
        if found.has("cholecystitis"):
            acuity = "acute" if ACUTE.search(words) else "chronic" if CHRONIC.search(words) else None
            if calculous and not alithiasic:
                code = {"acute": "K80.00", "chronic": "K80.10", None: "K80.00"}[acuity]
            else:
                code = {"acute": "K81.0", "chronic": "K81.1", None: "K81.9"}[acuity]
        else:
            code = "K80.20"
        add(code, "cholelithiasis" if code == "K80.20" else "cholecystitis",
            found.mentions("cholelithiasis", "cholecystitis"))  # fmt: skip
        handled.update(("cholelithiasis", "cholecystitis"))
    if found.has("appendicitis"):
        words = folded(found.sentences("appendicitis"))
        code = "K35.32" if PERFORATED.search(words) else "K35.80"
        add(code, "appendicitis", found.mentions("appendicitis"), ["perforated"] if code != "K35.80" else [])
        handled.add("appendicitis")
    return handled


def _thyroid_and_swallowing(found: Found, add: Add, result: Inference) -> set[str]:
    """Autoimmune thyroiditis (its hypothyroidism E06.3 alone) and dysphagia by phase."""
    handled: set[str] = set()
    if found.has("autoimmune_thyroiditis"):
        add("E06.3", "autoimmune_thyroiditis", found.mentions("autoimmune_thyroiditis", "hypothyroidism"),
            ["hypothyroidism from autoimmune thyroiditis: E06.3 alone"])  # fmt: skip
        handled.update(("autoimmune_thyroiditis", "hypothyroidism"))
    if found.has("dysphagia"):
        words = folded(found.sentences("dysphagia"))
        phase = first_of(DYSPHAGIA_PHASES, words, "R13.10")
        add(phase, "dysphagia", found.mentions("dysphagia"))
        handled.add("dysphagia")
    return handled


CONDITIONS: tuple[Rule, ...] = (
    _respiratory,
    _sided,
    _infections,
    _mind_and_nerves,
    _thyroid_and_swallowing,
    _others,
)
