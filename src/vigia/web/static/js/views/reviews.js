// Human review: open, acknowledged and resolved items, by role; acknowledge and resolve
// with a note.

import { get, post } from "../api.js";
import { badge, clear, field, h, shortId, table, when, empty } from "../dom.js";

const STATUSES = ["open", "acknowledged", "resolved"];

export async function render(root, { can, showError }) {
  const statuses = h("fieldset", { class: "states" }, h("legend", {}, "Status"),
    STATUSES.map((status) => h("label", { class: "check" }, h("input", { type: "checkbox", value: status, checked: status !== "resolved" }), status)));
  const role = h("input", { type: "text", autocomplete: "off", placeholder: "e.g. medical_team" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter reviews" }, statuses, field("Role", role), h("button", { type: "submit" }, "Apply"));
  const list = h("div", {});
  const status = h("p", { class: "muted status", role: "status" });
  root.append(h("h1", {}, "Human review"), filters, status, list);

  async function act(path, body, what) {
    try {
      await post(path, body);
      status.textContent = what;
      await load();
    } catch (error) {
      showError(error);
    }
  }

  function row(item) {
    const cell = h("td", { class: "act" });
    if (can("review") && item.status === "open") {
      cell.append(h("button", { type: "button", onclick: () => act(`/reviews/${item.id}/acknowledge`, undefined, `Review ${shortId(item.id)} acknowledged.`) }, "Acknowledge"));
    }
    if (can("review") && item.status !== "resolved") {
      const note = h("input", { type: "text", maxlength: 2000, required: true, "aria-label": `Resolution note for review ${shortId(item.id)}`, placeholder: "What was decided" });
      const form = h("form", { class: "inline", novalidate: true }, note, h("button", { type: "submit" }, "Resolve"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (!note.value.trim()) {
          note.setAttribute("aria-invalid", "true");
          note.focus();
          status.textContent = "A resolution needs a note.";
          return;
        }
        act(`/reviews/${item.id}/resolve`, { note: note.value.trim() }, `Review ${shortId(item.id)} resolved.`);
      });
      cell.append(form);
    }
    return h("tr", { "data-review": item.id },
      h("td", { class: "mono" }, shortId(item.id)), h("td", {}, badge(item.status)),
      h("td", {}, h("a", { href: `#/jobs/${item.job_id}`, class: "mono" }, shortId(item.job_id))),
      h("td", {}, item.role), h("td", {}, `${item.severity} / ${item.urgency}`), h("td", {}, item.reason),
      h("td", {}, when(item.created_at)),
      h("td", {}, item.resolution ? `${item.resolution} (${item.resolved_by || ""})` : item.acknowledged_by ? `taken by ${item.acknowledged_by}` : "—"),
      cell);
  }

  async function load() {
    try {
      const chosen = [...statuses.querySelectorAll("input:checked")].map((box) => box.value);
      const page = await get("/reviews", { status: chosen, role: role.value.trim() || undefined, limit: 100 });
      clear(list).append(page.reviews.length
        ? table(["Review", "Status", "Job", "Role", "Severity / urgency", "Reason", "Opened", "Outcome", ""], page.reviews.map(row), "Review items, newest first")
        : empty("No review item matches."));
    } catch (error) {
      showError(error);
    }
  }

  filters.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  await load();
  const refresh = setInterval(() => { if (!document.hidden && !list.contains(document.activeElement)) load(); }, 15000);
  return () => clearInterval(refresh);
}
