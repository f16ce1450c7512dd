"""The clinical concepts the coder recognises, in English and Spanish, and the ICD-10-CM
code each starts from (refined by `vigia.workloads.coding.icd10` with what the note says:
type, stage, site, laterality, acuity, the conditions it combines with).

The conditions of ED notes, discharge summaries, wound-care nursing notes and outpatient
visits: the common chronic diseases and their complications, acute presentations, wounds,
and the symptoms coded when no diagnosis explains them. Phrases are matched on words,
case-insensitively and with or without accents; abbreviations in capitals match only in
capitals ("PE" is not "pe").
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Concept:
    key: str
    #: The code when the note says nothing more specific.
    code: str
    en: tuple[str, ...]
    es: tuple[str, ...]
    #: Abbreviations, matched in capitals only (both languages).
    abbreviations: tuple[str, ...] = ()
    #: Ongoing conditions: listed among the antecedents they are still the patient's.
    chronic: bool = False
    #: A sign or symptom (R codes): not coded when a coded diagnosis explains it.
    symptom: bool = False
    #: The symptoms integral to this diagnosis (Official Guidelines I.B.5).
    explains: tuple[str, ...] = ()
    #: The code of a history of it ("history of stroke": Z86.73), when it has one.
    history_code: str | None = None


def _c(key: str, code: str, en: str, es: str, abbreviations: str = "", **flags: object) -> Concept:
    split = lambda text: tuple(part.strip() for part in text.split("|") if part.strip())  # noqa: E731
    return Concept(key, code, split(en), split(es), split(abbreviations), **flags)  # type: ignore[arg-type]


RESPIRATORY = ("cough", "dyspnea", "fever", "chest_pain")

CONCEPTS: tuple[Concept, ...] = (
    # --- endocrine and metabolic -------------------------------------------------------
    _c("diabetes", "E11.9",
       "diabetes mellitus|diabetes|diabetic|type 2 diabetes|type ii diabetes|type 1 diabetes|t2dm|t1dm",
       "diabetes mellitus|diabetes|diabético|diabética|diabetes tipo 2|diabetes tipo 1",
       "DM|DM2|DM1|DMII|DMI|T2DM|T1DM|IDDM|NIDDM|DBT", chronic=True),
    _c("hypothyroidism", "E03.9", "hypothyroidism|hypothyroid", "hipotiroidismo", chronic=True),
    # Hypothyroidism from autoimmune thyroiditis is E06.3 alone (Index: Hypothyroidism, autoimmune).
    _c("autoimmune_thyroiditis", "E06.3",
       "hashimoto thyroiditis|hashimoto's thyroiditis|hashimoto disease|hashimoto's disease|autoimmune thyroiditis|"
       "chronic lymphocytic thyroiditis|autoimmune hypothyroidism",
       "tiroiditis de hashimoto|enfermedad de hashimoto|tiroiditis autoinmune|tiroiditis linfocitaria crónica|"
       "hipotiroidismo autoinmune|hipotiroidismo por tiroiditis de hashimoto",
       chronic=True, explains=("hypothyroidism",)),
    _c("hyperthyroidism", "E05.90", "hyperthyroidism|thyrotoxicosis", "hipertiroidismo|tirotoxicosis", chronic=True),
    _c("obesity", "E66.9", "obesity|obese", "obesidad|obeso|obesa", chronic=True),
    _c("overweight", "E66.3", "overweight", "sobrepeso", chronic=True),
    _c("morbid_obesity", "E66.01", "morbid obesity|severe obesity|morbidly obese", "obesidad mórbida|obesidad severa",
       chronic=True),
    _c("hyperlipidemia", "E78.5", "hyperlipidemia|dyslipidemia|mixed hyperlipidemia|combined hyperlipidemia",
       "hiperlipidemia|dislipidemia|hiperlipidemia mixta|dislipidemia mixta|dislipemia|dislipemia mixta", "HLD|DLP",
       chronic=True),
    _c("hypercholesterolemia", "E78.00", "hypercholesterolemia|pure hypercholesterolemia|high cholesterol",
       "hipercolesterolemia|colesterol alto", chronic=True),
    _c("hypertriglyceridemia", "E78.1", "hypertriglyceridemia", "hipertrigliceridemia", chronic=True),
    _c("dehydration", "E86.0", "dehydration|dehydrated", "deshidratación|deshidratado|deshidratada"),
    _c("hypokalemia", "E87.6", "hypokalemia|low potassium", "hipokalemia|hipopotasemia"),
    _c("hyponatremia", "E87.1", "hyponatremia|low sodium", "hiponatremia"),
    _c("hyperkalemia", "E87.5", "hyperkalemia|hyperkalaemia|high potassium", "hiperkalemia|hiperpotasemia|"
       "hipercalemia"),
    _c("hypernatremia", "E87.0", "hypernatremia|hypernatraemia", "hipernatremia"),
    _c("vitamin_d_deficiency", "E55.9", "vitamin d deficiency|low vitamin d|hypovitaminosis d|vitamin d insufficiency",
       "déficit de vitamina d|deficiencia de vitamina d|hipovitaminosis d|insuficiencia de vitamina d", chronic=True),
    _c("hypoglycemia", "E16.2", "hypoglycemia|hypoglycaemia|low blood sugar", "hipoglucemia|hipoglicemia"),
    _c("hyperglycemia", "R73.9", "hyperglycemia|hyperglycaemia|high blood sugar", "hiperglucemia|hiperglicemia",
       symptom=True),
    _c("malnutrition", "E46", "malnutrition|undernutrition|protein calorie malnutrition|protein-calorie malnutrition",
       "desnutrición|malnutrición|desnutrición proteico calórica|desnutrición calórico proteica|"
       "desnutrición proteico-calórica|desnutrición calórico-proteica"),
    _c("severe_malnutrition", "E43", "severe malnutrition|severe protein calorie malnutrition",
       "desnutrición severa|desnutrición grave"),
    # --- circulatory ------------------------------------------------------------------------
    # "Elevated blood pressure" without the diagnosis is R03.0, not hypertension.
    _c("hypertension", "I10", "hypertension|high blood pressure",
       "hipertensión arterial|hipertensión|hipertenso|hipertensa|presión alta", "HTN|HTA|HBP", chronic=True),
    _c("hypertensive_heart_disease", "I11.9", "hypertensive heart disease|hypertensive cardiomyopathy",
       "cardiopatía hipertensiva|cardiopatia hipertensiva", "HHD", chronic=True),
    _c("heart_failure", "I50.9",
       "heart failure|congestive heart failure|cardiac failure|hfref|hfpef|"
       "heart failure with reduced ejection fraction|"
       "heart failure with preserved ejection fraction",
       "insuficiencia cardíaca|insuficiencia cardiaca|insuficiencia cardíaca congestiva|falla cardíaca|falla cardiaca",
       "CHF|HF|ICC|HFrEF|HFpEF|ICFEr|ICFEp|ICFEVIr|ICFEVIp", chronic=True, explains=("dyspnea", "edema")),
    _c("atrial_fibrillation", "I48.91", "atrial fibrillation|afib|a-fib|a fib",
       "fibrilación auricular|arritmia completa por fibrilación auricular",
       "AF|AFib|ACxFA|ACFA", chronic=True, explains=("palpitations",)),
    _c("coronary_disease", "I25.10",
       "coronary artery disease|coronary disease|ischemic heart disease|atherosclerotic heart disease",
       "enfermedad coronaria|cardiopatía isquémica|enfermedad arterial coronaria", "CAD|ASHD", chronic=True),
    _c("myocardial_infarction", "I21.9",
       "myocardial infarction|heart attack|stemi|nstemi|acute mi",
       "infarto agudo de miocardio|infarto de miocardio|infarto cardíaco|infarto", "MI|AMI|IAM|IMA|STEMI|NSTEMI|"
       "IAMCEST|IAMSEST|SCACEST|SCASEST|IAMEST|IAMSEST",
       explains=("chest_pain",), history_code="I25.2"),
    _c("angina", "I20.9", "angina|angina pectoris", "angina|angina de pecho", explains=("chest_pain",)),
    _c("dvt", "I82.409", "deep vein thrombosis|deep venous thrombosis", "trombosis venosa profunda", "DVT|TVP",
       explains=("edema", "leg_pain"), history_code="Z86.718"),
    _c("pulmonary_embolism", "I26.99",
       "pulmonary embolism|pulmonary embolus", "tromboembolismo pulmonar|embolia pulmonar",
       "TEP|TEPA", explains=("dyspnea", "chest_pain"), history_code="Z86.711"),
    _c("stroke", "I63.9", "stroke|cerebral infarction|cerebrovascular accident|ischemic stroke|"
       "acute ischemic stroke|embolic stroke|"
       "cardioembolic stroke|lacunar infarct|lacunar stroke",
       "accidente cerebrovascular|ictus|infarto cerebral|evento cerebrovascular|accidente cerebrovascular isquémico|"
       "ictus isquémico|infarto lacunar", "CVA|ACV|ECV|ACVi|ACVI|AVC",
       history_code="Z86.73"),
    _c("hemorrhagic_stroke", "I61.9", "intracerebral hemorrhage|hemorrhagic stroke|intraparenchymal hemorrhage",
       "hemorragia intracerebral|hemorragia intraparenquimatosa|accidente cerebrovascular hemorrágico|"
       "ictus hemorrágico",
       "ICH", history_code="Z86.79"),
    _c("hemiplegia", "G81.90", "hemiplegia|hemiparesis|hemiparetic|hemiplegic",
       "hemiplejia|hemiplejía|hemiparesia|hemiparético|hemiparética|hemipléjico|hemipléjica", chronic=True),
    _c("dysphagia", "R13.10", "dysphagia|difficulty swallowing|swallowing difficulty",
       "disfagia|dificultad para deglutir|trastorno de la deglución", symptom=True),
    _c("aphasia", "R47.01", "aphasia|aphasic", "afasia|afásico|afásica", symptom=True),
    _c("dysarthria", "R47.1", "dysarthria|dysarthric", "disartria", symptom=True),
    _c("tia", "G45.9", "transient ischemic attack", "accidente isquémico transitorio|ataque isquémico transitorio",
       "TIA|AIT", history_code="Z86.73"),
    _c("peripheral_arterial_disease", "I73.9", "peripheral arterial disease|peripheral vascular disease",
       "enfermedad arterial periférica|enfermedad vascular periférica|arteriopatía periférica|"
       "enfermedad arterial oclusiva periférica|arteriopatía obliterante", "PAD|PVD|EAP|EAOP", chronic=True),
    _c("aortic_dissection", "I71.00", "aortic dissection|dissection of the aorta|dissecting aneurysm",
       "disección aórtica|disección de aorta|disección de la aorta|aneurisma disecante", explains=("chest_pain",)),
    _c("hypotension", "I95.9", "hypotension|low blood pressure", "hipotensión|presión baja"),
    # --- respiratory -----------------------------------------------------------------------
    _c("pneumonia", "J18.9", "pneumonia|community acquired pneumonia|bronchopneumonia",
       "neumonía|neumonía adquirida en la comunidad|bronconeumonía|pulmonía|neumonía basal", "CAP|NAC",
       explains=RESPIRATORY, history_code=None),
    _c("copd", "J44.9", "chronic obstructive pulmonary disease|copd|emphysema|chronic bronchitis",
       "enfermedad pulmonar obstructiva crónica|epoc|enfisema|bronquitis crónica", "COPD|EPOC", chronic=True,
       explains=("cough", "dyspnea")),
    _c("asthma", "J45.909",
       "asthma|asthmatic", "asma|asmático|asmática", chronic=True, explains=("dyspnea", "wheezing")),
    _c("bronchitis", "J20.9", "acute bronchitis|bronchitis", "bronquitis aguda|bronquitis", explains=("cough",)),
    _c("uri", "J06.9", "upper respiratory infection|upper respiratory tract infection|common cold",
       "infección respiratoria alta|infección de vías respiratorias altas|resfriado común|resfrío", "URI",
       explains=("cough", "fever")),
    _c("influenza", "J11.1", "influenza|flu", "influenza|gripe", explains=("cough", "fever")),
    _c("covid", "U07.1", "covid-19|covid|sars-cov-2 infection", "covid-19|covid|infección por sars-cov-2",
       explains=("cough", "fever", "dyspnea")),
    _c("respiratory_failure", "J96.90", "respiratory failure|hypoxic respiratory failure|"
       "hypercapnic respiratory failure",
       "insuficiencia respiratoria|falla respiratoria", explains=("dyspnea",)),
    _c("allergic_rhinitis", "J30.9", "allergic rhinitis|hay fever|seasonal allergies",
       "rinitis alérgica|rinitis estacional|polinosis", chronic=True),
    _c("snoring", "R06.83", "snoring|snores", "ronquido|ronquidos|roncopatía|ronca", symptom=True),
    _c("pleural_effusion", "J90", "pleural effusion", "derrame pleural"),
    _c("sleep_apnea", "G47.33", "obstructive sleep apnea|sleep apnea", "apnea obstructiva del sueño|"
       "apnea del sueño|síndrome de apnea obstructiva del sueño|"
       "síndrome de apnea hipopnea del sueño", "OSA|SAOS|SAHOS|SAHS", chronic=True, explains=("snoring",)),
    _c("neuropathy", "G62.9", "peripheral neuropathy|polyneuropathy|neuropathy|diabetic neuropathy",
       "neuropatía periférica|polineuropatía|neuropatía|neuropatía diabética", chronic=True),
    _c("retinopathy", "H35.00", "retinopathy|diabetic retinopathy", "retinopatía|retinopatía diabética", chronic=True),
    # --- kidney and urinary ---------------------------------------------------------------
    _c("renal_failure", "N19", "renal failure|kidney failure|renal insufficiency",
       "insuficiencia renal|falla renal"),
    _c("ckd", "N18.9",
       "chronic kidney disease|chronic renal failure|chronic renal insufficiency|end stage renal disease|"
       "end-stage renal disease",
       "enfermedad renal crónica|insuficiencia renal crónica|enfermedad renal crónica terminal",
       "CKD|ERC|IRC|ESRD", chronic=True),
    _c("aki", "N17.9", "acute kidney injury|acute renal failure|acute kidney failure",
       "lesión renal aguda|insuficiencia renal aguda|falla renal aguda|fracaso renal agudo|injuria renal aguda",
       "AKI|LRA|FRA"),
    _c("uti", "N39.0",
       "urinary tract infection|uti", "infección urinaria|infección del tracto urinario|infección de vías urinarias|"
       "infección de las vías urinarias|foco urinario",
       "UTI|ITU|IVU", explains=("dysuria", "fever")),
    _c("cystitis", "N30.90", "cystitis|acute cystitis", "cistitis|cistitis aguda", explains=("dysuria",)),
    _c("pyelonephritis", "N10", "pyelonephritis|acute pyelonephritis", "pielonefritis|pielonefritis aguda",
       explains=("dysuria", "fever", "flank_pain")),
    _c("kidney_stone", "N20.0",
       "kidney stone|nephrolithiasis|renal calculus", "litiasis renal|cálculo renal|nefrolitiasis",
       explains=("flank_pain",)),
    _c("bph", "N40.0", "benign prostatic hyperplasia|enlarged prostate", "hiperplasia prostática benigna|"
       "hiperplasia benigna de próstata|crecimiento prostático|"
       "adenoma de próstata|hipertrofia prostática", "BPH|HPB|HBP", chronic=True),
    _c("nocturia", "R35.1", "nocturia", "nocturia|nicturia", symptom=True),
    _c("urinary_frequency", "R35.0", "urinary frequency|frequent urination", "polaquiuria", symptom=True),
    _c("urinary_urgency", "R39.15", "urinary urgency", "urgencia miccional|urgencia urinaria", symptom=True),
    _c("urinary_hesitancy", "R39.11", "urinary hesitancy", "retardo miccional|dificultad para iniciar la micción",
       symptom=True),
    _c("weak_stream", "R39.12", "weak urinary stream|weak stream|poor urinary stream", "chorro débil|"
       "chorro miccional débil",
       symptom=True),
    _c("heavy_menstrual_bleeding", "N92.0", "heavy menstrual bleeding|menorrhagia|heavy periods",
       "menorragia|sangrado menstrual abundante|hipermenorrea", "HMB"),
    # --- digestive ------------------------------------------------------------------------
    _c("gerd", "K21.9",
       "gastroesophageal reflux disease|gastro-oesophageal reflux disease|acid reflux|reflux",
       "enfermedad por reflujo gastroesofágico|reflujo gastroesofágico|reflujo", "GERD|ERGE|RGE", chronic=True),
    _c("gastroenteritis", "K52.9", "gastroenteritis", "gastroenteritis|gastroenteritis aguda",
       explains=("nausea_vomiting", "abdominal_pain", "diarrhea")),
    _c("constipation", "K59.00", "constipation", "estreñimiento"),
    _c("appendicitis", "K35.80", "acute appendicitis|appendicitis", "apendicitis aguda|apendicitis",
       explains=("abdominal_pain", "nausea_vomiting", "fever")),
    _c("cholecystitis", "K81.9", "cholecystitis|acute cholecystitis|calculous cholecystitis",
       "colecistitis|colecistitis aguda|colecistitis litiásica|colecistitis calculosa",
       explains=("abdominal_pain", "nausea_vomiting", "fever")),
    _c("cholelithiasis", "K80.20", "cholelithiasis|gallstones|gallbladder stones|symptomatic cholelithiasis",
       "colelitiasis|cálculos biliares|litiasis biliar|litiasis vesicular", explains=("abdominal_pain",)),
    _c("gi_bleed", "K92.2", "gastrointestinal bleeding|gastrointestinal hemorrhage|gi bleed",
       "hemorragia digestiva|sangrado digestivo", "GIB|HDA|HDB"),
    _c("cirrhosis", "K74.60", "cirrhosis|liver cirrhosis", "cirrosis|cirrosis hepática", chronic=True),
    _c("pancreatitis", "K85.90", "acute pancreatitis|pancreatitis", "pancreatitis aguda|pancreatitis",
       explains=("abdominal_pain", "nausea_vomiting")),
    _c("diverticulitis", "K57.92", "diverticulitis", "diverticulitis", explains=("abdominal_pain",)),
    # --- skin and wounds ------------------------------------------------------------------
    _c("pressure_ulcer", "L89.90",
       "pressure ulcer|pressure injury|pressure sore|decubitus ulcer|bedsore|bed sore|deep tissue injury|"
       "pressure ulcers|pressure injuries|pressure sores|decubitus ulcers|bedsores|deep tissue pressure injury",
       "úlcera por presión|ulcera por presion|lesión por presión|lesion por presion|escara|úlcera por decúbito|"
       "lesión de tejido profundo|úlceras por presión|lesiones por presión", "UPP|LPP|DTI|DTPI|sDTI"),
    _c("cellulitis", "L03.90", "cellulitis", "celulitis", explains=("fever",)),
    _c("abscess", "L02.91", "abscess|skin abscess", "absceso|absceso cutáneo"),
    _c("diabetic_foot_ulcer", "L97.509", "diabetic foot ulcer|foot ulcer|ulcer of the foot|plantar ulcer|"
       "neuropathic ulcer|toe ulcer|heel ulcer|diabetic ulcer",
       "pie diabético|úlcera del pie|úlcera en el pie|úlcera plantar|úlcera neuropática|úlcera diabética|"
       "úlcera de pie diabético|úlcera en talón|úlcera del talón|úlcera en el talón"),
    _c("venous_ulcer", "I83.009", "venous ulcer|venous leg ulcer|venous stasis ulcer|varicose ulcer",
       "úlcera venosa|úlcera varicosa"),
    # --- musculoskeletal ------------------------------------------------------------------
    _c("osteoarthritis", "M19.90", "osteoarthritis|degenerative joint disease", "artrosis|osteoartritis|"
       "osteoartrosis|gonartrosis|coxartrosis",
       "OA|DJD", chronic=True, explains=("joint_pain",)),
    _c("hip_fracture", "S72.009A",
       "hip fracture|fractured hip|femoral neck fracture|fracture of the femoral neck|intertrochanteric fracture|"
       "pertrochanteric fracture|fracture of the hip|proximal femur fracture|subcapital fracture|"
       "femur fracture|femoral fracture|fracture of the femur|trochanteric fracture",
       "fractura de cadera|fractura de cuello femoral|fractura del cuello femoral|fractura de cuello de fémur|"
       "fractura del cuello del fémur|fractura intertrocantérea|fractura pertrocantérea|fractura transcervical|"
       "fractura subcapital|fractura de fémur proximal|fractura de fémur|fractura trocantérea|"
       "fractura intertrocantérica|fractura pertrocantérica|fractura del fémur", history_code="Z87.81"),
    _c("wrist_fracture", "S52.509A",
       "colles fracture|colles' fracture|fracture of the distal radius|distal radius fracture|distal radial fracture|"
       "wrist fracture|fractured wrist|fracture of the wrist",
       "fractura de colles|fractura de radio distal|fractura distal de radio|fractura distal del radio|"
       "fractura del radio distal|fractura de muñeca|fractura de la muñeca|fractura de pouteau-colles",
       history_code="Z87.81"),
    _c("chronic_pain", "G89.29", "chronic pain|chronic pain syndrome", "dolor crónico|síndrome de dolor crónico",
       chronic=True),
    _c("low_back_pain", "M54.50", "low back pain|lumbago|lumbar pain", "lumbalgia|dolor lumbar|lumbago"),
    _c("sciatica_with_lumbago", "M54.40", "lumbago with sciatica|low back pain with sciatica|lumbosciatica",
       "lumbociática|lumbociatalgia|lumbalgia con ciática", explains=("low_back_pain",)),
    _c("gastritis", "K29.70", "gastritis", "gastritis"),
    # --- other common conditions: their default code until the note says more --------
    _c("hypertensive_crisis", "I16.9", "hypertensive crisis|hypertensive urgency|hypertensive emergency",
       "crisis hipertensiva|urgencia hipertensiva|emergencia hipertensiva"),
    _c("peptic_ulcer", "K27.9", "peptic ulcer|peptic ulcer disease", "úlcera péptica|enfermedad ulcerosa péptica",
       "PUD"),
    _c("surgical_site_infection", "T81.40XA",
       "surgical site infection|wound infection after surgery|infected surgical wound|postoperative wound infection",
       "infección de herida operatoria|infección de sitio quirúrgico|infección de la herida quirúrgica|"
       "herida operatoria infectada", "ISQ"),
    _c("erysipelas", "A46", "erysipelas", "erisipela"),
    _c("herpes_zoster", "B02.9", "herpes zoster|shingles", "herpes zóster|herpes zoster|culebrilla"),
    _c("conjunctivitis", "H10.9", "conjunctivitis", "conjuntivitis"),
    _c("otitis_media", "H66.90", "otitis media", "otitis media"),
    _c("pharyngitis", "J02.9", "pharyngitis|sore throat", "faringitis|faringoamigdalitis"),
    _c("venous_insufficiency", "I87.2", "venous insufficiency|chronic venous insufficiency",
       "insuficiencia venosa|insuficiencia venosa crónica", "IVC", chronic=True),
    # (no abbreviation: "RA" is room air beside an SpO2, "AR" aortic regurgitation)
    _c("rheumatoid_arthritis", "M06.9", "rheumatoid arthritis", "artritis reumatoide", chronic=True),
    _c("lupus", "M32.9", "systemic lupus erythematosus|lupus", "lupus eritematoso sistémico|lupus", "SLE|LES",
       chronic=True),
    _c("aortic_stenosis", "I35.0", "aortic stenosis|aortic valve stenosis",
       "estenosis aórtica|estenosis valvular aórtica", chronic=True),
    _c("complete_heart_block", "I44.2", "complete heart block|third degree av block|complete av block",
       "bloqueo auriculoventricular completo|bloqueo av completo|bloqueo auriculoventricular de tercer grado",
       chronic=True),
    _c("hyperuricemia", "E79.0", "hyperuricemia", "hiperuricemia", chronic=True),
    _c("prediabetes", "R73.03", "prediabetes|prediabetic", "prediabetes|prediabético|prediabética", chronic=True),
    _c("urinary_incontinence", "R32", "urinary incontinence|incontinence of urine",
       "incontinencia urinaria|incontinencia de orina", symptom=True),
    _c("schizophrenia", "F20.9", "schizophrenia", "esquizofrenia", chronic=True),
    _c("bipolar_disorder", "F31.9", "bipolar disorder|bipolar affective disorder",
       "trastorno bipolar|trastorno afectivo bipolar", chronic=True),
    _c("pulmonary_tuberculosis", "A15.0", "pulmonary tuberculosis", "tuberculosis pulmonar|TBC pulmonar", "TB"),
    _c("gout", "M10.9", "gout|gouty arthritis", "gota|artritis gotosa", chronic=True, explains=("joint_pain",)),
    _c("osteoporosis", "M81.0", "osteoporosis", "osteoporosis", chronic=True),
    # --- mental and neurological ----------------------------------------------------------
    _c("depression", "F32.A", "depression|depressive disorder|depressive symptoms",
       "depresión|trastorno depresivo|síndrome depresivo", chronic=True),
    _c("major_depression", "F32.9",
       "major depressive disorder|major depression|major depressive episode|depressive episode",
       "trastorno depresivo mayor|depresión mayor|episodio depresivo mayor|episodio depresivo",
       "MDD|TDM", chronic=True),
    _c("anxiety", "F41.9", "anxiety|anxiety disorder", "ansiedad|trastorno de ansiedad", chronic=True),
    _c("generalized_anxiety", "F41.1", "generalized anxiety disorder|generalised anxiety disorder",
       "trastorno de ansiedad generalizada", "GAD|TAG", chronic=True),
    _c("dementia", "F03.90", "dementia|major neurocognitive disorder",
       "demencia|deterioro cognitivo mayor|trastorno neurocognitivo mayor", chronic=True),
    _c("alzheimer", "G30.9", "alzheimer's disease|alzheimer disease|alzheimer's dementia|alzheimer dementia|"
       "alzheimer's|alzheimers|alzheimer|dementia of the alzheimer's type|dementia of alzheimer type",
       "enfermedad de alzheimer|alzheimer|demencia tipo alzheimer|demencia por alzheimer|demencia de alzheimer|"
       "demencia por enfermedad de alzheimer|demencia de tipo alzheimer", chronic=True),
    _c("parkinson", "G20.A1", "parkinson's disease|parkinson disease|parkinson's",
       "enfermedad de parkinson|parkinson", chronic=True),
    _c("parkinsonism", "G20.C", "parkinsonism", "parkinsonismo|síndrome parkinsoniano", chronic=True),
    _c("epilepsy", "G40.909", "epilepsy|seizure disorder", "epilepsia|trastorno convulsivo", chronic=True,
       explains=("seizure",)),
    _c("seizure", "R56.9", "seizure|convulsion", "convulsión|crisis convulsiva", symptom=True),
    _c("migraine", "G43.909", "migraine", "migraña|jaqueca", chronic=True, explains=("headache",)),
    _c("delirium", "R41.0", "delirium|acute confusion|acute confusional state", "delirium|síndrome confusional agudo"),
    # --- infections and blood -------------------------------------------------------------
    _c("sepsis", "A41.9", "sepsis|septicemia|severe sepsis|urosepsis", "sepsis|septicemia|sepsis severa|sepsis grave",
       explains=("fever",)),
    _c("septic_shock", "R65.21", "septic shock", "shock séptico|choque séptico"),
    _c("hiv", "B20", "hiv disease|aids", "infección por vih|sida", "HIV|VIH", chronic=True),
    _c("hepatitis_c", "B18.2", "chronic hepatitis c|hepatitis c", "hepatitis c crónica|hepatitis c", "HCV|VHC",
       chronic=True),
    _c("anemia", "D64.9", "anemia|anaemia", "anemia", chronic=True, explains=("fatigue",)),
    _c("iron_deficiency_anemia", "D50.9",
       "iron deficiency anemia|iron deficiency anaemia|iron-deficiency anemia",
       "anemia ferropénica|anemia por déficit de hierro|anemia por deficiencia de hierro|anemia ferropriva|ferropenia",
       chronic=True, explains=("fatigue",)),
    # --- use of substances ----------------------------------------------------------------
    _c("tobacco", "F17.200", "smoker|current smoker|smokes|smoking|smokes cigarettes|tobacco use|nicotine dependence|"
       "tobacco dependence|active smoker|cigarette smoker",
       "fumador|fumadora|tabaquismo|fuma|fuma cigarrillos|tabaquismo activo|fumador activo|fumadora activa|"
       "tabaquista|consumo de tabaco|dependencia a la nicotina", chronic=True, history_code="Z87.891"),
    _c("former_smoker", "Z87.891", "former smoker|ex-smoker|ex smoker|quit smoking|stopped smoking|former tobacco use|"
       "history of tobacco use|history of smoking|remote smoker|previous smoker",
       "exfumador|exfumadora|ex fumador|ex fumadora|ex-fumador|ex-fumadora|extabaquista|ex tabaquista|"
       "dejó de fumar|extabaquismo|ex tabaquismo|tabaquismo previo|tabaquismo suspendido|tabaquismo pasado",
       chronic=True),
    _c("alcohol_use", "F10.20", "alcohol dependence|alcohol use disorder|alcoholism",
       "alcoholismo|dependencia al alcohol|dependencia alcohólica|trastorno por consumo de alcohol|"
       "etilismo crónico|enolismo crónico", chronic=True),
    # --- statuses (Z codes): medications taken long-term, dependence on devices, history --
    _c("oral_hypoglycemic", "Z79.84",
       "metformin|glipizide|glimepiride|glyburide|glibenclamide|gliclazide|sitagliptin|linagliptin|saxagliptin|"
       "vildagliptin|alogliptin|empagliflozin|dapagliflozin|canagliflozin|ertugliflozin|pioglitazone|repaglinide|"
       "nateglinide|acarbose|janumet|januvia|jardiance|farxiga|glucophage|tradjenta|synjardy|xigduo|rybelsus|"
       "oral hypoglycemic|oral hypoglycemics|oral antidiabetic|oral antidiabetics",
       "metformina|glipizida|glimepirida|glibenclamida|gliclazida|sitagliptina|linagliptina|saxagliptina|"
       "vildagliptina|alogliptina|empagliflozina|dapagliflozina|canagliflozina|ertugliflozina|pioglitazona|"
       "repaglinida|nateglinida|acarbosa|janumet|januvia|jardiance|forxiga|glucophage|trayenta|galvus|"
       "hipoglucemiantes orales|hipoglicemiantes orales|antidiabéticos orales|hipoglucemiante oral|"
       "hipoglicemiante oral|antidiabético oral", "ADO|HGO", chronic=True),
    _c("insulin", "Z79.4",
       "insulin|insulin glargine|glargine|lantus|toujeo|basaglar|nph insulin|insulin nph|detemir|levemir|degludec|"
       "tresiba|lispro|humalog|insulin aspart|novolog|novorapid|glulisine|humulin|basal insulin|basal-bolus",
       "insulina|insulina glargina|glargina|lantus|toujeo|insulina nph|detemir|levemir|degludec|tresiba|lispro|"
       "humalog|insulina aspart|novorapid|glulisina|apidra|humulina|insulina basal|insulinoterapia|"
       "insulinizado|insulinizada|insulinorrequiriente", "NPH", chronic=True),
    _c("injectable_antidiabetic", "Z79.85",
       "semaglutide|ozempic|liraglutide|victoza|dulaglutide|trulicity|exenatide|tirzepatide|mounjaro",
       "semaglutida|ozempic|liraglutida|victoza|dulaglutida|trulicity|exenatida|tirzepatida|mounjaro",
       chronic=True),
    _c("anticoagulant", "Z79.01",
       "warfarin|coumadin|apixaban|eliquis|rivaroxaban|xarelto|dabigatran|pradaxa|edoxaban|savaysa|acenocoumarol|"
       "oral anticoagulation|anticoagulation|anticoagulated|anticoagulant|anticoagulants",
       "warfarina|apixabán|apixaban|rivaroxabán|rivaroxaban|dabigatrán|dabigatran|edoxabán|edoxaban|lixiana|"
       "acenocumarol|sintrom|anticoagulación oral|anticoagulación|anticoagulado|anticoagulada|anticoagulantes orales|"
       "anticoagulante oral", "ACO|NACO|ACOD|DOAC|NOAC", chronic=True),
    _c("heparin", "Z79.01", "enoxaparin|lovenox|low molecular weight heparin|dalteparin|fondaparinux",
       "enoxaparina|clexane|heparina de bajo peso molecular|bemiparina|tinzaparina|fondaparinux", "HBPM|LMWH",
       chronic=True),
    _c("aspirin", "Z79.82", "aspirin|acetylsalicylic acid|baby aspirin|ecotrin",
       "aspirina|ácido acetilsalicílico|adiro|cardioaspirina|aspirineta", "ASA|AAS", chronic=True),
    _c("antiplatelet", "Z79.02", "clopidogrel|plavix|ticagrelor|brilinta|prasugrel|effient|cilostazol|"
       "dual antiplatelet therapy|antiplatelet therapy",
       "clopidogrel|ticagrelor|prasugrel|cilostazol|doble antiagregación|antiagregación plaquetaria|antiagregado|"
       "antiagregada", "DAPT|DTAP", chronic=True),
    _c("opioid", "Z79.891",
       "oxycodone|hydrocodone|morphine|tramadol|tapentadol|fentanyl|methadone|hydromorphone|oxycontin|percocet|norco|"
       "opioid|opioids|opiate|opiates",
       "oxicodona|hidrocodona|morfina|tramadol|tapentadol|fentanilo|metadona|hidromorfona|opioide|opioides|"
       "opiáceos", chronic=True),
    _c("home_oxygen", "Z99.81",
       "home oxygen|home o2|supplemental oxygen at home|oxygen dependent|oxygen-dependent|chronic oxygen therapy|"
       "long-term oxygen therapy|dependence on supplemental oxygen|oxygen at home|nocturnal oxygen",
       "oxígeno domiciliario|oxigenoterapia domiciliaria|oxigenoterapia crónica domiciliaria|o2 domiciliario|"
       "dependiente de oxígeno|oxígeno en domicilio|oxigenodependiente|oxígeno crónico", "LTOT", chronic=True),
    _c("dialysis", "Z99.2", "hemodialysis|haemodialysis|peritoneal dialysis|on dialysis|dialysis dependent|dialysis",
       "hemodiálisis|diálisis peritoneal|en diálisis|diálisis|programa de hemodiálisis", chronic=True),
    _c("falls", "Z91.81", "history of falls|history of falling|recurrent falls|frequent falls|multiple falls|"
       "high fall risk|at risk for falls|high risk for falls",
       "caídas a repetición|caídas recurrentes|caídas frecuentes|antecedente de caídas|antecedentes de caídas|"
       "historia de caídas|alto riesgo de caídas|riesgo alto de caídas|riesgo de caídas alto|caídas previas",
       chronic=True),
    # --- symptoms (coded when nothing explains them) --------------------------------------
    _c("chest_pain", "R07.9", "chest pain|chest discomfort", "dolor torácico|dolor en el pecho|dolor precordial",
       symptom=True),
    _c("abdominal_pain", "R10.9", "abdominal pain|stomach pain|belly pain", "dolor abdominal|dolor de estómago",
       symptom=True),
    _c("fever", "R50.9", "fever|febrile|pyrexia", "fiebre|febril|alza térmica", symptom=True),
    _c("cough", "R05.9", "cough", "tos", symptom=True),
    _c("dyspnea", "R06.00", "dyspnea|shortness of breath|breathlessness|difficulty breathing",
       "disnea|falta de aire|dificultad para respirar|dificultad respiratoria", "SOB", symptom=True),
    _c("headache", "R51.9", "headache|cephalalgia", "cefalea|dolor de cabeza", symptom=True),
    _c("nausea_vomiting", "R11.2", "nausea and vomiting|nausea with vomiting", "náuseas y vómitos|náusea y vómito",
       symptom=True),
    _c("dizziness", "R42", "dizziness|lightheadedness|vertigo", "mareo|mareos|vértigo", symptom=True),
    _c("syncope", "R55", "syncope|fainted|passed out", "síncope|desmayo|lipotimia", symptom=True),
    _c("fatigue", "R53.83", "fatigue|tiredness", "fatiga|cansancio|astenia", symptom=True),
    _c("edema", "R60.9", "edema|swelling of the legs|leg swelling", "edema|hinchazón de piernas", symptom=True),
    _c("palpitations", "R00.2", "palpitations", "palpitaciones", symptom=True),
    _c("dysuria", "R30.0", "dysuria|painful urination", "disuria|ardor al orinar", symptom=True),
    _c("diarrhea", "R19.7", "diarrhea|diarrhoea", "diarrea", symptom=True),
    _c("wheezing", "R06.2", "wheezing", "sibilancias", symptom=True),
    _c("joint_pain", "M25.50", "joint pain|arthralgia", "dolor articular|artralgia", symptom=True),
    _c("flank_pain", "R10.9", "flank pain", "dolor en flanco|dolor lumbar cólico", symptom=True),
    _c("leg_pain", "M79.606", "leg pain", "dolor de pierna|dolor en la pierna", symptom=True),
)  # fmt: skip

BY_KEY = {concept.key: concept for concept in CONCEPTS}


def strip_accents(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def phrases(concept: Concept, language: str) -> Iterator[str]:
    """The concept's phrases in ``language``, each also without accents (notes often drop them)."""
    seen: set[str] = set()
    for phrase in concept.es if language == "es" else concept.en:
        for form in (phrase, strip_accents(phrase)):
            if form not in seen:
                seen.add(form)
                yield form
