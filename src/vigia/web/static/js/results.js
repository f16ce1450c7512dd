// A finished job's result, shown for what it is: a pressure-injury case, a document, a
// coding report; any other pipeline's result as JSON.

import { blobUrl, get } from "./api.js";
import { badge, definitions, h, table, empty } from "./dom.js";

export async function showResult(job, body) {
  const result = body.result || {};
  const degraded = body.degraded_stages && body.degraded_stages.length
    ? h("p", { class: "warn-text" }, `Finished without: ${body.degraded_stages.join(", ")} (graceful degradation).`) : null;
  let shown;
  if (job.pipeline === "pressure_injury_case") shown = await pressureInjury(job, result);
  else if (job.pipeline === "document_ingest") shown = await documentResult(result);
  else if (job.pipeline === "clinical_coding_report") shown = codingReport(result);
  else shown = h("pre", { class: "json" }, JSON.stringify(result, null, 2));
  return h("div", { class: "result" }, degraded, shown);
}

function list(items, describe) {
  return items && items.length ? h("ul", {}, items.map((item) => h("li", {}, describe(item)))) : empty("None.");
}

async function pressureInjury(job, result) {
  const figure = h("figure", { class: "photo" }, h("figcaption", {}, "The photo as stored: metadata stripped, turned upright."));
  try {
    const url = await blobUrl(`/jobs/${job.id}/file`);
    figure.prepend(h("img", { src: url, alt: "The case's wound photo" }));
  } catch (error) {
    figure.prepend(h("p", { class: "error-text" }, `The photo cannot be shown: ${error.message}`));
  }
  const triage = result.triage || {};
  const braden = (result.risk || {}).braden || {};
  const quality = result.quality || {};
  return h("div", { class: "case" },
    figure,
    h("div", {},
      h("p", { class: "triage" }, "Triage: ", h("span", { class: `level level-${triage.level}` }, (triage.level || "—").toUpperCase())),
      h("h3", {}, "Why"), list(triage.reasons, (reason) => reason),
      definitions([
        ["Grade", result.graded ? (result.grade || "no injury found") : "not graded automatically"],
        ["Confidence", result.confidence === null || result.confidence === undefined ? "—" : `${Math.round(result.confidence * 100)} %`],
        ["Braden", braden.total ? `${braden.total} (${String(braden.band).replace("_", " ")} risk)` : "—"],
        ["Photo", quality.assessable ? "assessable" : `not assessable: ${(quality.problems || []).join("; ")}`],
        ["Escalated", result.escalated ? "yes: a person was told" : "no"],
      ]),
      h("h3", {}, "Risk factors"), list((result.risk || {}).risk_factors, (factor) => factor.label || factor.factor),
      h("h3", {}, "Recommendations"),
      list(result.recommendations, (item) => [h("strong", {}, `${item.topic}: `), item.text, h("small", {}, ` (${item.reference})`)]),
    ));
}

async function documentResult(result) {
  if (!result.document_id) return h("pre", { class: "json" }, JSON.stringify(result, null, 2));
  const [document, chunks] = await Promise.all([
    get(`/documents/${result.document_id}`),
    get(`/documents/${result.document_id}/chunks`, { limit: 100 }),
  ]);
  return documentView(document, chunks);
}

export function documentView(document, chunks) {
  const metadata = document.metadata || {};
  const valueOf = (item) => (item && typeof item === "object" && "value" in item ? item.value : item);
  const sourceOf = (item) => {
    const source = item && typeof item === "object" ? item.source : null;
    return source ? `page ${source.page}, characters ${source.start}–${source.end}: “${source.text}”` : "";
  };
  const metaRows = Object.entries(metadata).map(([name, item]) => {
    const items = Array.isArray(item) ? item : [item];
    return h("tr", {}, h("th", { scope: "row" }, name.replace(/_/g, " ")),
      h("td", {}, items.map((entry) => String(valueOf(entry) ?? "—")).join("; ")),
      h("td", { class: "muted" }, items.map(sourceOf).filter(Boolean).slice(0, 3).join(" · ")));
  });
  return h("div", { class: "document" },
    definitions([
      ["Title", document.title], ["Type", document.document_type], ["Language", document.language], ["Date", document.date],
      ["Pages", String(document.page_count)], ["Status", badge(document.status)],
      ["Extraction", Object.entries(document.methods || {}).map(([method, count]) => `${method}: ${count}`).join(", ")],
      ["Chunks", `${document.chunks} (${document.chunks_embedded} embedded${document.embedding_model ? `, ${document.embedding_model}` : ""})`],
      document.degraded && document.degraded.length ? ["Degraded", document.degraded.join("; ")] : null,
    ]),
    h("h3", {}, "Metadata"),
    metaRows.length ? table(["Field", "Value", "Source"], metaRows) : empty("No metadata was found."),
    h("h3", {}, "Pages"),
    table(["Page", "Read by", "OCR confidence", "Why"], document.pages.map((page) => h("tr", { id: `page-${page.number}` },
      h("td", {}, String(page.number)), h("td", {}, page.method),
      h("td", {}, page.ocr_confidence === null ? "—" : `${page.ocr_confidence.toFixed(1)}`), h("td", {}, page.reason || "")))),
    document.pages.map((page) => h("details", { "data-page": page.number }, h("summary", {}, `Page ${page.number} text`), h("pre", { class: "text" }, page.text))),
    h("h3", {}, `Chunks (${chunks.total})`),
    h("ol", { class: "chunks" }, chunks.chunks.map((chunk) => h("li", {},
      h("small", { class: "muted" }, `pages ${chunk.page_start}–${chunk.page_end} · characters ${chunk.start_offset}–${chunk.end_offset}`),
      h("p", {}, chunk.text)))),
    chunks.total > chunks.chunks.length ? h("p", { class: "muted" }, `… and ${chunks.total - chunks.chunks.length} more.`) : null);
}

// The redacted note with each piece of evidence marked: asserted codes and excluded
// mentions (negated, ruled out, historical...) in different marks.
function highlighted(text, codes, excluded) {
  const marks = [];
  const collect = (items, kind) => {
    for (const item of items || []) {
      for (const evidence of item.evidence || []) {
        if (evidence.redacted_start === undefined) continue;
        marks.push({ start: evidence.redacted_start, end: evidence.redacted_end, kind, label: `${item.code} ${item.description}${item.reason ? ` — ${item.reason}` : ""}` });
      }
    }
  };
  collect(codes, "code");
  collect(excluded, "excluded");
  marks.sort((a, b) => a.start - b.start || b.end - a.end);
  const pieces = [];
  let cursor = 0;
  for (const mark of marks) {
    if (mark.start < cursor) continue; // overlapping: the first one wins
    pieces.push(text.slice(cursor, mark.start));
    pieces.push(h("mark", { class: mark.kind, title: mark.label }, text.slice(mark.start, mark.end)));
    cursor = mark.end;
  }
  pieces.push(text.slice(cursor));
  return h("pre", { class: "note", "aria-label": "The redacted note, evidence marked" }, pieces);
}

function evidenceText(item) {
  return (item.evidence || []).map((evidence) => `“${evidence.text}” (${evidence.section || "no section"}${evidence.context && evidence.context.length ? `; ${evidence.context.join(", ")}` : ""})`).join(" · ");
}

function codingReport(result) {
  const analysis = result.coding_analysis || {};
  const phiCounts = Object.entries(result.phi_counts || {}).map(([type, count]) => `${type} ${count}`).join(", ");
  return h("div", { class: "coding" },
    definitions([
      ["Language", `${result.language} (${result.language_source})`],
      ["PHI redacted", phiCounts || "none found"],
      result.degraded && result.degraded.length ? ["Degraded", result.degraded.map((item) => `${item.stage}: ${item.reason}`).join("; ")] : null,
    ]),
    h("p", { class: "legend" }, h("mark", { class: "code" }, "evidence of a code"), " ", h("mark", { class: "excluded" }, "excluded mention")),
    highlighted(result.redacted_text || "", result.codes, result.excluded),
    h("h3", {}, "Codes the note supports"),
    result.codes && result.codes.length
      ? table(["Code", "Description", "Confidence", "Evidence"], result.codes.map((code) => h("tr", {},
        h("td", { class: "mono" }, code.code), h("td", {}, code.description), h("td", {}, `${Math.round(code.confidence * 100)} %`), h("td", {}, evidenceText(code)))))
      : empty("No code is supported by the note."),
    h("h3", {}, "Excluded mentions"),
    result.excluded && result.excluded.length
      ? table(["Code", "Description", "Why not", "Evidence"], result.excluded.map((code) => h("tr", {},
        h("td", { class: "mono" }, code.code), h("td", {}, code.description), h("td", {}, code.reason), h("td", {}, evidenceText(code)))))
      : empty("Nothing was excluded."),
    h("h3", {}, "Billing analysis"),
    analysis.billed && analysis.billed.length ? definitions([
      ["Billed", analysis.billed.join(", ")],
      ["Supported", (analysis.supported || []).join(", ") || "none"],
    ]) : empty("No billed codes were sent with the note."),
    analysis.unsupported && analysis.unsupported.length ? [h("h4", {}, "Billed but not supported"),
      table(["Code", "Description", "Why"], analysis.unsupported.map((item) => h("tr", { class: "bad-row" },
        h("td", { class: "mono" }, item.code), h("td", {}, item.description || ""), h("td", {}, item.reason))))] : null,
    analysis.missing && analysis.missing.length ? [h("h4", {}, "Supported but not billed"),
      table(["Code", "Description", "Evidence"], analysis.missing.map((item) => h("tr", {},
        h("td", { class: "mono" }, item.code), h("td", {}, item.description), h("td", {}, evidenceText(item)))))] : null,
    h("h3", {}, "Documentation queries"),
    list(result.quality, (query) => `${query.issue}${query.concept ? ` (${query.concept})` : ""}`));
}
