// The job list: filters, server-side pages, and live badges and bars from the tenant's
// event stream. After a reconnect (or a dropped event) the page is read again, so that
// what is shown is what the store holds.

import { follow, get } from "../api.js";
import { badge, clear, field, h, progressBar, setProgress, shortId, table, when, empty } from "../dom.js";

const STATES = ["queued", "running", "succeeded", "degraded", "failed", "dead", "cancelled"];
const TERMINAL = new Set(["succeeded", "degraded", "failed", "dead", "cancelled"]);
// Filters kept while the tab lives (not in the URL: it stays free of search text).
const remembered = { pipeline: "", states: [], after: "", before: "", idPrefix: "", batch: "" };
const PAGE_SIZE = 50;
const REFRESH_MS = 10000;

export async function render(root, { showError }) {
  const pipelines = await get("/pipelines");
  const rows = new Map();
  const cursors = [null];
  let page = 0;
  let reloadTimer = null;

  const pipeline = h("select", { name: "pipeline" }, h("option", { value: "" }, "any pipeline"),
    pipelines.map((item) => h("option", { value: item.name }, item.name)));
  pipeline.value = remembered.pipeline;
  const states = h("fieldset", { class: "states" }, h("legend", {}, "States"),
    STATES.map((state) => h("label", { class: "check" },
      h("input", { type: "checkbox", name: "state", value: state, checked: remembered.states.includes(state) }), state)));
  const after = h("input", { type: "datetime-local", name: "created_after", value: remembered.after });
  const before = h("input", { type: "datetime-local", name: "created_before", value: remembered.before });
  const idPrefix = h("input", { type: "search", name: "id", value: remembered.idPrefix, placeholder: "e.g. 3fa9c2", pattern: "[0-9a-fA-F]{1,32}", autocomplete: "off" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
    field("Pipeline", pipeline), states, field("Created after", after), field("Created before", before),
    field("Job id starts with", idPrefix), h("button", { type: "submit" }, "Apply"),
    h("button", { type: "reset", class: "quiet" }, "Clear"));
  const batchBox = h("div", { class: "batch", hidden: true });
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const body = h("div", {});
  const previous = h("button", { type: "button", class: "quiet", disabled: true }, "← Newer");
  const next = h("button", { type: "button", class: "quiet", disabled: true }, "Older →");
  const live = h("span", { class: "live", title: "live updates" }, "connecting…");

  root.append(h("div", { class: "heading" }, h("h1", {}, "Jobs"), live), filters, batchBox, summary, body,
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, next));

  function chosen() {
    return {
      pipeline: pipeline.value || undefined,
      state: [...states.querySelectorAll("input:checked")].map((box) => box.value),
      created_after: after.value ? new Date(after.value).toISOString() : undefined,
      created_before: before.value ? new Date(before.value).toISOString() : undefined,
      id_prefix: idPrefix.value.trim() || undefined,
      batch: remembered.batch || undefined,
      limit: PAGE_SIZE,
    };
  }

  function row(job) {
    const bar = progressBar(job.progress, `progress of job ${shortId(job.id)}`);
    const state = h("td", { class: "state" }, badge(job.state));
    const stage = h("td", { class: "stage" }, job.current_stage || "—");
    const tr = h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono", title: job.id }, shortId(job.id))),
      h("td", {}, job.pipeline), state, h("td", { class: "progress" }, bar), stage,
      h("td", {}, when(job.created_at)),
      h("td", {}, job.batch_id ? h("button", { type: "button", class: "link", onclick: () => showBatch(job.batch_id) }, `batch ${shortId(job.batch_id)}`) : "—"));
    rows.set(job.id, { tr, bar, state, stage, seq: job.last_event });
    return tr;
  }

  async function load() {
    try {
      const found = await get("/jobs", { ...chosen(), cursor: cursors[page] || undefined });
      rows.clear();
      clear(body).append(found.jobs.length
        ? table(["Job", "Pipeline", "State", "Progress", "Stage", "Created", "Batch"], found.jobs.map(row), "Jobs, newest first")
        : empty("No job matches these filters."));
      cursors[page + 1] = found.next_cursor;
      previous.disabled = page === 0;
      next.disabled = !found.next_cursor;
      summary.textContent = `Page ${page + 1} · ${found.jobs.length} job(s) shown`;
      if (remembered.batch) await refreshBatch();
    } catch (error) {
      showError(error);
    }
  }

  function reloadSoon() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => { reloadTimer = null; load(); }, 500);
  }

  async function showBatch(id) {
    remembered.batch = id;
    page = 0;
    cursors.length = 1;
    await load();
  }

  async function refreshBatch() {
    const batch = await get(`/batches/${remembered.batch}`);
    batchBox.hidden = false;
    clear(batchBox).append(
      h("strong", {}, `Batch ${shortId(batch.id)} · ${batch.pipeline}`), " ",
      `${batch.finished} of ${batch.size} finished`, progressBar(batch.progress, "batch progress"),
      h("button", { type: "button", class: "quiet", onclick: () => { remembered.batch = ""; batchBox.hidden = true; load(); } }, "Show all jobs"));
  }

  function onEvent(type, event) {
    if (type === "resync") return reloadSoon();
    const shown = rows.get(event.job_id);
    if (!shown) {
      // A new job belongs at the top of the first page, if the filters let it in.
      if (type === "job.queued" && page === 0) reloadSoon();
      return;
    }
    if (event.seq <= shown.seq) return;
    shown.seq = event.seq;
    setProgress(shown.bar, event.progress);
    clear(shown.state).append(badge(event.state));
    shown.stage.textContent = TERMINAL.has(event.state) ? "—" : event.stage || "—";
    if (remembered.batch && type === "job.finished") refreshBatch().catch(() => {});
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!idPrefix.checkValidity()) {
      idPrefix.reportValidity();
      return;
    }
    Object.assign(remembered, {
      pipeline: pipeline.value, states: chosen().state, after: after.value, before: before.value, idPrefix: idPrefix.value.trim(),
    });
    page = 0;
    cursors.length = 1;
    load();
  });
  filters.addEventListener("reset", () => {
    Object.assign(remembered, { pipeline: "", states: [], after: "", before: "", idPrefix: "", batch: "" });
    batchBox.hidden = true;
    setTimeout(() => { page = 0; cursors.length = 1; load(); });
  });
  previous.addEventListener("click", () => { page = Math.max(0, page - 1); load(); });
  next.addEventListener("click", () => { page += 1; load(); });

  await load();
  const stop = follow("/events", {
    onEvent,
    onOpen: () => { live.textContent = "live"; live.classList.add("on"); load(); },
    onError: () => { live.textContent = "reconnecting…"; live.classList.remove("on"); },
  });
  // Events written by a worker in another process reach this page through the re-read.
  const refresh = setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS);
  return () => {
    stop();
    clearInterval(refresh);
    if (reloadTimer) clearTimeout(reloadTimer);
  };
}
