// Submitting a job: a form for each of the workloads, a JSON form for any other pipeline;
// the API's validation errors shown beside the field they name; then the live job page.

import { ApiError, call, get } from "../api.js";
import { clear, field, h } from "../dom.js";

const BRADEN = [
  ["sensory_perception", "Sensory perception", 4], ["moisture", "Moisture", 4], ["activity", "Activity", 4],
  ["mobility", "Mobility", 4], ["nutrition", "Nutrition", 4], ["friction_shear", "Friction and shear", 3],
];
const FACTORS = [
  ["diabetes", "Diabetes"], ["incontinence", "Incontinence"], ["vascular_disease", "Peripheral vascular disease"],
  ["previous_pressure_injury", "Previous pressure injury"], ["smoker", "Smoker"], ["sepsis", "Sepsis or fever"],
  ["reduced_perfusion", "Reduced perfusion"], ["sedation", "Sedation"],
];

export async function render(root, { can, params, showError }) {
  const pipelines = (await get("/pipelines")).filter((pipeline) => pipeline.name !== "vigia.notify");
  root.append(h("h1", {}, "Submit a job"));
  if (!can("submit")) {
    root.append(h("p", { class: "empty" }, "This key may not submit jobs (a submitter or admin key may)."));
    return;
  }
  const chosen = params[0] && pipelines.some((item) => item.name === params[0]) ? params[0] : pipelines[0]?.name;
  const picker = h("select", { name: "pipeline" }, pipelines.map((item) => h("option", { value: item.name, selected: item.name === chosen }, item.name)));
  picker.addEventListener("change", () => { location.hash = `#/submit/${picker.value}`; });
  const pipeline = pipelines.find((item) => item.name === chosen);
  root.append(field("Pipeline", picker), pipeline ? h("p", { class: "muted" }, pipeline.description) : null);
  if (!pipeline) return;
  const form = h("form", { class: "card submit", novalidate: true, "aria-label": `Submit a ${pipeline.name} job` });
  const controls = {};
  const add = (name, label, control) => {
    control.name = name;
    controls[name] = control;
    form.append(field(label, control, `problem-${name.replace(/\./g, "-")}`));
    return control;
  };

  if (pipeline.accepts.length) add("file", `File (${pipeline.accepts.join(", ")})`, h("input", { type: "file", accept: pipeline.accepts.join(","), required: true }));
  let collect;
  if (pipeline.name === "pressure_injury_case") {
    add("patient_code", "Patient code (pseudonymous, never a name)", h("input", { type: "text", required: true, maxlength: 64, autocomplete: "off" }));
    const braden = h("fieldset", {}, h("legend", {}, "Braden subscales"));
    form.append(braden);
    for (const [name, label, top] of BRADEN) {
      const select = h("select", { required: true }, h("option", { value: "" }, "—"),
        Array.from({ length: top }, (_, index) => h("option", { value: String(index + 1) }, String(index + 1))));
      select.name = `braden.${name}`;
      controls[`braden.${name}`] = select;
      braden.append(field(label, select, `problem-braden-${name}`));
    }
    const context = h("fieldset", {}, h("legend", {}, "Patient context"));
    form.append(context);
    const age = h("input", { type: "number", min: 0, max: 130, name: "context.age" });
    controls["context.age"] = age;
    context.append(field("Age", age, "problem-context-age"));
    for (const [name, label] of FACTORS) {
      const box = h("input", { type: "checkbox", name: `context.${name}` });
      controls[`context.${name}`] = box;
      context.append(h("label", { class: "check" }, box, label));
    }
    collect = () => ({
      patient_code: controls.patient_code.value.trim(),
      braden: Object.fromEntries(BRADEN.filter(([name]) => controls[`braden.${name}`].value).map(([name]) => [name, Number(controls[`braden.${name}`].value)])),
      context: Object.fromEntries([
        ...(age.value ? [["age", Number(age.value)]] : []),
        ...FACTORS.filter(([name]) => controls[`context.${name}`].checked).map(([name]) => [name, true]),
      ]),
    });
  } else if (pipeline.name === "clinical_coding_report") {
    add("text", "Encounter note", h("textarea", { rows: 12, required: true, spellcheck: "false" }));
    add("billed_codes", "Billed ICD-10-CM codes (comma-separated, optional)", h("input", { type: "text", autocomplete: "off", placeholder: "I10, E11.22" }));
    add("language", "Language", h("select", {}, h("option", { value: "" }, "detect"), h("option", { value: "es" }, "Spanish"), h("option", { value: "en" }, "English")));
    collect = () => {
      const value = { text: controls.text.value };
      const billed = controls.billed_codes.value.split(",").map((code) => code.trim()).filter(Boolean);
      if (billed.length) value.billed_codes = billed;
      if (controls.language.value) value.language = controls.language.value;
      return value;
    };
  } else if (pipeline.name === "document_ingest") {
    add("title", "Title (optional: read from the document)", h("input", { type: "text", maxlength: 200 }));
    add("language", "Language", h("select", {}, h("option", { value: "" }, "detect"), h("option", { value: "es" }, "Spanish"), h("option", { value: "en" }, "English")));
    collect = () => {
      const value = {};
      if (controls.title.value.trim()) value.title = controls.title.value.trim();
      if (controls.language.value) value.language = controls.language.value;
      return value;
    };
  } else {
    add("input", "Input (JSON)", h("textarea", { rows: 8, spellcheck: "false" }, "{}"));
    collect = () => {
      try {
        return JSON.parse(controls.input.value || "null");
      } catch (error) {
        throw new ApiError(422, "invalid_json", `not JSON: ${error.message}`, { field: "input" });
      }
    };
  }
  add("priority", "Priority (−100 to 100; higher runs first)", h("input", { type: "number", min: -100, max: 100, value: 0 }));
  const status = h("p", { class: "muted status", role: "status" });
  form.append(h("button", { type: "submit" }, "Submit"), status);
  root.append(form);

  function problem(name, text) {
    const known = name && form.querySelector(`#problem-${name.replace(/\./g, "-")}`);
    const target = known || form.querySelector("#problem-input") || form.querySelector(`#problem-${Object.keys(controls)[0].replace(/\./g, "-")}`);
    target.textContent = text;
    const control = controls[name];
    if (control) {
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", target.id);
      control.focus();
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const element of form.querySelectorAll(".problem")) element.textContent = "";
    for (const control of Object.values(controls)) control.removeAttribute("aria-invalid");
    const button = form.querySelector("button[type=submit]");
    try {
      const value = collect();
      const priority = Number(controls.priority.value || 0);
      let answer;
      if (controls.file) {
        if (!controls.file.files.length) throw new ApiError(422, "invalid_input", "choose a file", { field: "file" });
        const data = new FormData();
        data.append("file", controls.file.files[0]);
        data.append("input", JSON.stringify(value));
        data.append("priority", String(priority));
        button.disabled = true;
        status.textContent = "Uploading…";
        answer = await call("POST", `/pipelines/${encodeURIComponent(pipeline.name)}/jobs`, { form: data });
      } else {
        button.disabled = true;
        status.textContent = "Submitting…";
        answer = await call("POST", `/pipelines/${encodeURIComponent(pipeline.name)}/jobs`, { json: { input: value, priority } });
      }
      location.hash = `#/jobs/${answer.id}`;
    } catch (error) {
      button.disabled = false;
      status.textContent = "";
      if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) {
        showError(error);
        return;
      }
      const problems = (error.details && error.details.problems) || [];
      if (problems.length) {
        for (const item of problems) problem(item.field.replace(/^input\./, ""), `${item.field}: ${item.problem}`);
      } else {
        problem(error.details && error.details.field, error.message);
      }
    }
  });
  clear(status);
}
