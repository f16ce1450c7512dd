// Document search: words, a question or a reference number over this tenant's documents,
// with filters; results with their marked snippets and a link to the page they are on.

import { get } from "../api.js";
import { clear, field, h, shortId, snippet, empty } from "../dom.js";
import { documentView } from "../results.js";

export async function render(root, { params, showError }) {
  if (params[0]) return showDocument(root, params[0], params[1]);
  const q = h("input", { type: "search", required: true, maxlength: 500, autocomplete: "off", placeholder: "e.g. mantenimiento de locales escolares, or Oficio N° 123-2025" });
  const type = h("input", { type: "text", maxlength: 50, autocomplete: "off", placeholder: "oficio, lab_report…" });
  const lang = h("select", {}, h("option", { value: "" }, "any"), h("option", { value: "es" }, "Spanish"), h("option", { value: "en" }, "English"));
  const from = h("input", { type: "date" });
  const to = h("input", { type: "date" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search documents" },
    field("Search", q), field("Type", type), field("Language", lang), field("Dated from", from), field("Dated to", to),
    h("button", { type: "submit" }, "Search"));
  const results = h("div", { "aria-live": "polite" });
  const recent = h("div", {});
  root.append(h("h1", {}, "Documents"), form, results, h("h2", {}, "Latest documents"), recent);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!q.value.trim()) {
      q.focus();
      return;
    }
    clear(results).append(h("p", { class: "muted" }, "Searching…"));
    try {
      const found = await get("/documents/search", {
        q: q.value.trim(), type: type.value.trim() || undefined, lang: lang.value || undefined,
        date_from: from.value || undefined, date_to: to.value || undefined, k: 20,
      });
      const titles = await titlesOf(found.results.map((item) => item.document_id));
      clear(results).append(
        found.vector_search !== "ok" ? h("p", { class: "warn-text" }, `Keyword search only: ${found.vector_search}`) : null,
        found.results.length ? h("ol", { class: "results" }, found.results.map((item) => h("li", { "data-document": item.document_id },
          h("a", { href: `#/documents/${item.document_id}/pages/${item.page}` }, titles[item.document_id] || `document ${shortId(item.document_id)}`),
          h("span", { class: "muted" }, ` · page ${item.page} · score ${item.score.toFixed(4)}`),
          snippet(item.snippet)))) : empty("Nothing matches."));
    } catch (error) {
      clear(results);
      showError(error);
    }
  });

  async function titlesOf(ids) {
    const unique = [...new Set(ids)];
    const found = await Promise.all(unique.map((id) => get(`/documents/${id}`).catch(() => null)));
    return Object.fromEntries(found.filter(Boolean).map((document) => [document.id, document.title || document.filename || `document ${shortId(document.id)}`]));
  }

  try {
    const page = await get("/documents", { limit: 20 });
    clear(recent).append(page.documents.length ? h("ul", {}, page.documents.map((document) => h("li", {},
      h("a", { href: `#/documents/${document.id}` }, document.title || `document ${shortId(document.id)}`),
      h("span", { class: "muted" }, ` · ${document.document_type || "unknown type"} · ${document.language || "?"} · ${document.page_count} page(s) · ${document.status}`))))
      : empty("No document has been ingested yet."));
  } catch (error) {
    showError(error);
  }
  return undefined;
}

async function showDocument(root, id, page) {
  const [document, chunks] = await Promise.all([get(`/documents/${id}`), get(`/documents/${id}/chunks`, { limit: 100 })]);
  root.append(h("p", {}, h("a", { href: "#/documents" }, "← Documents")),
    h("h1", {}, document.title || `Document ${shortId(id)}`),
    document.job_id ? h("p", {}, h("a", { href: `#/jobs/${document.job_id}` }, "The ingestion job")) : null,
    documentView(document, chunks));
  const text = page && root.querySelector(`details[data-page="${page}"]`);
  if (text) {
    text.open = true;
    text.scrollIntoView({ block: "start" });
  }
  return undefined;
}
