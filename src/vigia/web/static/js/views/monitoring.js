// Monitoring (admin): queue depth, throughput, failure rate and p95 per pipeline over the
// last hour, from the server's history; workers per queue, alerts, notification failures.

import { get } from "../api.js";
import { badge, clear, h, table, empty } from "../dom.js";
import { lineChart } from "../charts.js";

export async function render(root, { can, showError }) {
  root.append(h("h1", {}, "Monitoring"));
  if (!can("admin")) {
    root.append(empty("Monitoring covers every tenant: admin keys only."));
    return;
  }
  const summary = h("div", { class: "stats" });
  const charts = h("div", { class: "charts" });
  const queues = h("div", {});
  const alerts = h("div", {});
  root.append(summary, h("h2", {}, "Active alerts"), alerts, h("h2", {}, "The last hour"), charts, h("h2", {}, "Queues and workers"), queues);

  async function load() {
    try {
      const [status, history] = await Promise.all([get("/monitoring/status"), get("/monitoring/history")]);
      clear(summary).append(
        h("div", { class: "card stat" }, h("h3", {}, "Health"), badge(status.health)),
        h("div", { class: "card stat" }, h("h3", {}, "Throughput"), `${status.throughput_per_minute.toFixed(1)} jobs/min`),
        h("div", { class: "card stat" }, h("h3", {}, "Failure rate"), status.failure_rate === null ? "—" : `${(status.failure_rate * 100).toFixed(1)} %`),
        h("div", { class: "card stat" }, h("h3", {}, "Dead letters"), String(status.dlq_size)),
        h("div", { class: "card stat" }, h("h3", {}, "Open reviews"), String(status.open_reviews)),
        h("div", { class: "card stat" }, h("h3", {}, "Undelivered notifications"), h("span", { class: status.notifications_failed ? "error-text" : "" }, String(status.notifications_failed))));
      clear(alerts).append(status.alerts.length
        ? table(["Rule", "About", "Severity", "Since", "Message"], status.alerts.map((alert) => h("tr", {},
          h("td", {}, alert.rule), h("td", {}, alert.key), h("td", {}, badge(alert.severity === "critical" ? "critical" : "warning")),
          h("td", {}, new Date(alert.since * 1000).toLocaleString()), h("td", {}, `${alert.message}${alert.firing ? "" : " (not firing yet)"}`))))
        : empty("No alert is active."));
      const names = Object.keys(history.pipelines);
      const perPipeline = (metric) => names.map((name) => ({ name, values: history.pipelines[name][metric] }));
      clear(charts).append(
        lineChart(history.buckets, Object.entries(history.queues).map(([name, item]) => ({ name, values: item.depth })), { title: "Queue depth (deepest per minute)" }),
        lineChart(history.buckets, perPipeline("finished"), { title: "Jobs finished per minute" }),
        lineChart(history.buckets, names.map((name) => ({ name, values: history.pipelines[name].failure_rate.map((value) => (value === null ? null : value * 100)) })), { title: "Failure rate", unit: " %" }),
        lineChart(history.buckets, perPipeline("p95_seconds"), { title: "p95 processing time", unit: " s" }));
      clear(queues).append(table(["Queue", "Waiting", "Consumers"], status.queues.map((queue) => h("tr", {},
        h("td", { class: "mono" }, queue.name), h("td", {}, String(queue.depth)),
        h("td", {}, queue.consumers.length ? queue.consumers.join(", ") : h("span", { class: "error-text" }, "none"))))));
    } catch (error) {
      showError(error);
    }
  }

  await load();
  const refresh = setInterval(() => { if (!document.hidden) load(); }, 15000);
  return () => clearInterval(refresh);
}
