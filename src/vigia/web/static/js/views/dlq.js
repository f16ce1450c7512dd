// The dead-letter queue: filters, statistics, retry one, bulk retry and purge by filter.

import { call, get, post } from "../api.js";
import { clear, field, h, shortId, table, when, empty } from "../dom.js";
import { barChart } from "../charts.js";

export async function render(root, { can, showError }) {
  const pipelines = await get("/pipelines");
  const pipeline = h("select", {}, h("option", { value: "" }, "any pipeline"), pipelines.map((item) => h("option", { value: item.name }, item.name)));
  const stage = h("input", { type: "text", autocomplete: "off" });
  const errorType = h("input", { type: "text", autocomplete: "off" });
  const after = h("input", { type: "datetime-local" });
  const before = h("input", { type: "datetime-local" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter dead jobs" },
    field("Pipeline", pipeline), field("Failed stage", stage), field("Error type", errorType),
    field("Died after", after), field("Died before", before), h("button", { type: "submit" }, "Apply"));
  const stats = h("div", { class: "stats" });
  const bulk = h("div", { class: "actions" });
  const list = h("div", {});
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Older →");
  const status = h("p", { class: "muted status", role: "status" });
  root.append(h("h1", {}, "Dead-letter queue"), filters, stats, bulk, status, list, more);
  let cursor = null;

  const chosen = () => ({
    pipeline: pipeline.value || undefined,
    stage: stage.value.trim() || undefined,
    error_type: errorType.value.trim() || undefined,
    died_after: after.value ? new Date(after.value).toISOString() : undefined,
    died_before: before.value ? new Date(before.value).toISOString() : undefined,
  });

  async function retryOne(id, button) {
    button.disabled = true;
    try {
      await post(`/jobs/${id}/retry`);
      status.textContent = `Job ${shortId(id)} is running again.`;
      await load();
    } catch (error) {
      button.disabled = false;
      showError(error);
    }
  }

  function row(dead) {
    const retry = can("admin") ? h("button", { type: "button", onclick: (event) => retryOne(dead.job.id, event.target) }, "Retry") : "";
    return h("tr", { "data-job": dead.job.id },
      h("td", {}, h("a", { href: `#/jobs/${dead.job.id}`, class: "mono" }, shortId(dead.job.id))),
      h("td", {}, dead.job.pipeline), h("td", {}, dead.failed_stage || "—"), h("td", {}, String(dead.attempts)),
      h("td", { class: "error-text" }, `${dead.error_type || ""}: ${dead.error_message || ""}`),
      h("td", {}, when(dead.job.finished_at)), h("td", {}, retry));
  }

  async function load(append = false) {
    try {
      const [page, statistics] = await Promise.all([
        get("/dlq", { ...chosen(), cursor: append ? cursor : undefined, limit: 50 }),
        append ? null : get("/dlq/statistics", chosen()),
      ]);
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (statistics) drawStatistics(statistics);
      const rows = page.jobs.map(row);
      if (append) list.querySelector("tbody").append(...rows);
      else clear(list).append(rows.length ? table(["Job", "Pipeline", "Failed stage", "Attempts", "Error", "Died", ""], rows, "Dead jobs") : empty("No dead job matches."));
    } catch (error) {
      showError(error);
    }
  }

  function drawStatistics(statistics) {
    const top = (counts) => Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([name, count]) => `${name} ${count}`).join(", ") || "—";
    clear(stats).append(
      h("div", { class: "card stat" }, h("strong", { class: "big" }, String(statistics.total)), " dead"),
      h("div", { class: "card stat" }, h("h3", {}, "By pipeline"), top(statistics.by_pipeline)),
      h("div", { class: "card stat" }, h("h3", {}, "By stage"), top(statistics.by_stage)),
      h("div", { class: "card stat" }, h("h3", {}, "By error"), top(statistics.by_error_type)),
      statistics.by_hour.length ? h("div", { class: "card stat wide" }, h("h3", {}, "Deaths per hour"),
        barChart(statistics.by_hour.map((item) => ({ label: new Date(item.hour * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), value: item.count })), "dead jobs per hour")) : null);
    clear(bulk);
    if (can("admin") && statistics.total) {
      bulk.append(
        h("button", { type: "button", onclick: bulkRetry }, `Retry all ${statistics.total} matching`),
        h("button", { type: "button", class: "danger", onclick: () => purge(statistics.total) }, `Purge ${statistics.total} matching…`));
    }
  }

  async function bulkRetry() {
    try {
      const answer = await post("/dlq/retry", chosen());
      status.textContent = `${answer.count} job(s) sent to run again.`;
      await load();
    } catch (error) {
      showError(error);
    }
  }

  async function purge(count) {
    const filter = chosen();
    const everything = !Object.values(filter).some((value) => value !== undefined);
    const question = everything
      ? `Delete all ${count} dead jobs of this tenant, with their stages and events? This cannot be undone.`
      : `Delete the ${count} dead jobs this filter selects? This cannot be undone.`;
    if (!window.confirm(question)) return;
    try {
      const answer = await call("DELETE", "/dlq", { parameters: { ...filter, all: everything ? "true" : undefined } });
      status.textContent = `${answer.count} dead job(s) purged.`;
      await load();
    } catch (error) {
      showError(error);
    }
  }

  filters.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  more.addEventListener("click", () => load(true));
  await load();
}
