// One job: its stage graph, each stage's attempts, the live event log, cancel and retry,
// and its result shown for what it is.

import { follow, get, post } from "../api.js";
import { badge, clear, definitions, h, progressBar, seconds, setProgress, shortId, table, when, empty } from "../dom.js";
import { stageGraph } from "../graph.js";
import { showResult } from "../results.js";

const TERMINAL = new Set(["succeeded", "degraded", "failed", "dead", "cancelled"]);
const ENDS = { "stage.succeeded": "succeeded", "stage.failed": "failed", "stage.retrying": "retrying", "stage.skipped": "skipped", "stage.cancelled": "cancelled" };

export async function render(root, { can, params, showError }) {
  const id = params[0];
  let detail = await get(`/jobs/${id}`);
  const pipeline = await get(`/pipelines/${encodeURIComponent(detail.pipeline)}`).catch(() => null);
  const attempts = new Map(); // stage -> [{started, ended, state, message}]
  let lastSeq = 0;

  const state = h("span", {}, badge(detail.state));
  const bar = progressBar(detail.progress, "job progress");
  const facts = h("div", {});
  const actions = h("div", { class: "actions" });
  const graph = h("div", { class: "graph-box" });
  const timeline = h("div", {});
  const log = h("ol", { class: "log", "aria-live": "polite", "aria-label": "Event log" });
  const reviews = h("div", {});
  const result = h("div", {});

  root.append(
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    h("div", { class: "heading" }, h("h1", {}, `Job ${shortId(id)}`), state),
    bar, facts, actions,
    h("section", { "aria-labelledby": "graph-title" }, h("h2", { id: "graph-title" }, "Stages"), graph, timeline),
    h("section", { "aria-labelledby": "result-title" }, h("h2", { id: "result-title" }, "Result"), result),
    h("section", { "aria-labelledby": "reviews-title" }, h("h2", { id: "reviews-title" }, "Human review"), reviews),
    h("section", { "aria-labelledby": "log-title" }, h("h2", { id: "log-title" }, "Event log"), log),
  );

  function drawFacts() {
    clear(state).append(badge(detail.state));
    setProgress(bar, detail.progress);
    clear(facts).append(definitions([
      ["Id", h("code", {}, detail.id)],
      ["Pipeline", `${detail.pipeline} (version ${detail.pipeline_version})`],
      ["Priority", String(detail.priority)],
      ["Current stage", detail.current_stage || "—"],
      ["Created", when(detail.created_at)],
      ["Started", when(detail.started_at)],
      ["Finished", when(detail.finished_at)],
      detail.batch_id ? ["Batch", h("code", {}, detail.batch_id)] : null,
      detail.error_type ? ["Error", h("span", { class: "error-text" }, `${detail.error_type}: ${detail.error_message || ""}`)] : null,
    ]));
    // Rebuilt only when what may be done changes: a button is not swapped under a pointer.
    const wanted = [
      can("submit") && !TERMINAL.has(detail.state) ? "cancel" : "",
      can("admin") && (detail.state === "dead" || detail.state === "failed") ? "retry" : "",
    ].join("|");
    if (actions.dataset.shown === wanted) return;
    actions.dataset.shown = wanted;
    clear(actions);
    if (wanted.startsWith("cancel")) {
      actions.append(h("button", { type: "button", class: "danger", onclick: () => act(`/jobs/${id}/cancel`, "Cancel this job?") }, "Cancel job"));
    }
    if (wanted.endsWith("retry")) {
      actions.append(h("button", { type: "button", onclick: () => act(`/jobs/${id}/retry`) }, "Retry from the failed stage"));
    }
  }

  async function act(path, question) {
    if (question && !window.confirm(question)) return;
    try {
      await post(path);
      await refresh();
    } catch (error) {
      showError(error);
    }
  }

  function drawStages() {
    const runs = Object.fromEntries(detail.stages.map((run) => [run.stage, run]));
    clear(graph).append(pipeline ? stageGraph(pipeline.stages, runs) : empty("The pipeline is not registered here."));
    const rows = [];
    for (const run of detail.stages) {
      const tried = attempts.get(run.stage) || [];
      if (!tried.length) {
        rows.push(h("tr", {}, h("th", { scope: "row" }, run.stage), h("td", {}, "—"), h("td", {}, badge(run.state)),
          h("td", {}, when(run.started_at)), h("td", {}, when(run.finished_at)), h("td", {}, seconds(run.duration)),
          h("td", {}, run.error_type ? `${run.error_type}: ${run.error_message || ""}` : "")));
        continue;
      }
      tried.forEach((attempt, index) => {
        const ended = attempt.ended || null;
        const duration = ended ? (new Date(ended) - new Date(attempt.started)) / 1000 : null;
        rows.push(h("tr", {}, h("th", { scope: "row" }, index === 0 ? run.stage : ""), h("td", {}, String(index + 1)),
          h("td", {}, badge(attempt.state)), h("td", {}, when(attempt.started)), h("td", {}, when(ended)),
          h("td", {}, seconds(duration)), h("td", { class: "error-text" }, attempt.message || "")));
      });
    }
    clear(timeline).append(table(["Stage", "Attempt", "State", "Start", "End", "Duration", "Error or note"], rows, "Each stage's attempts"));
  }

  function drawReviews() {
    clear(reviews).append(detail.reviews.length
      ? table(["Review", "Status", "Role", "Severity", "Reason"], detail.reviews.map((item) => h("tr", {},
        h("td", {}, h("a", { href: "#/reviews" }, shortId(item.id))), h("td", {}, badge(item.status)), h("td", {}, item.role),
        h("td", {}, item.severity), h("td", {}, item.reason))))
      : empty("No human review was opened for this job."));
  }

  async function drawResult() {
    clear(result);
    if (!TERMINAL.has(detail.state)) {
      result.append(empty("The result appears here when the job finishes."));
      return;
    }
    if (detail.state === "cancelled") {
      result.append(empty("The job was cancelled: it has no result."));
      return;
    }
    if (detail.state === "failed" || detail.state === "dead") {
      result.append(h("p", { class: "error-text" }, `The job ${detail.state}: ${detail.error_type || ""} ${detail.error_message || ""}`));
      return;
    }
    const body = await get(`/jobs/${id}/result`);
    result.append(await showResult(detail, body));
  }

  async function refresh() {
    detail = await get(`/jobs/${id}`);
    drawFacts();
    drawStages();
    drawReviews();
    await drawResult();
  }

  function onEvent(type, event) {
    if (event.seq <= lastSeq) return false;
    lastSeq = event.seq;
    log.append(h("li", { "data-type": event.type },
      h("time", {}, when(event.created_at)), " ", h("strong", {}, event.type),
      event.stage ? ` · ${event.stage}` : "", ` · ${Math.round(event.progress)} %`, event.message ? ` — ${event.message}` : ""));
    if (event.stage && type === "stage.started") {
      const list = attempts.get(event.stage) || [];
      list.push({ started: event.created_at, state: "running" });
      attempts.set(event.stage, list);
    } else if (event.stage && ENDS[type]) {
      const list = attempts.get(event.stage) || [];
      const open = list[list.length - 1];
      if (open && !open.ended) {
        Object.assign(open, { ended: event.created_at, state: ENDS[type], message: event.message });
      } else {
        list.push({ started: event.created_at, ended: event.created_at, state: ENDS[type], message: event.message });
      }
      attempts.set(event.stage, list);
    }
    detail.progress = Math.max(detail.progress, event.progress);
    detail.state = event.state;
    setProgress(bar, event.progress);
    clear(state).append(badge(event.state));
    if (type === "stage.progress") return false;
    if (type === "job.finished" || type.startsWith("stage.") || type === "job.escalated" || type === "job.retried") {
      refreshSoon();
    }
    return type === "job.finished";
  }

  let pending = null;
  function refreshSoon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh().catch(showError); }, 300);
  }

  drawFacts();
  drawStages();
  drawReviews();
  await drawResult();
  let stop = null;
  const listen = () => {
    stop = follow(`/jobs/${id}/events`, {
      onEvent,
      onError: (error) => { if (error.status) showError(error); },
      onEnd: () => refreshSoon(),
    });
  };
  listen();
  // A retried job's stream starts again: listen once more when the job leaves its end.
  const watchRetry = setInterval(async () => {
    if (document.hidden || !TERMINAL.has(detail.state)) return;
    try {
      const now = await get(`/jobs/${id}`);
      if (!TERMINAL.has(now.state) || now.last_event > lastSeq) {
        if (stop) stop();
        listen();
      }
    } catch {
      // shown on the next action
    }
  }, 5000);
  return () => {
    if (stop) stop();
    clearInterval(watchRetry);
    if (pending) clearTimeout(pending);
  };
}
