// Building the page without innerHTML: every text goes in as text, so nothing the API
// returns (a note, an error message, a file name) can become markup.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

export function clear(element) {
  while (element.firstChild) element.firstChild.remove();
  return element;
}

const STATE_CLASSES = {
  pending: "neutral", queued: "neutral", running: "active", retrying: "warn", succeeded: "ok",
  degraded: "warn", failed: "bad", dead: "bad", cancelled: "neutral", cancelling: "warn",
  skipped: "neutral", not_run: "neutral", open: "bad", acknowledged: "warn", resolved: "ok",
  indexed: "ok", indexing: "active", ok: "ok", warning: "warn", critical: "bad",
};

export function badge(state) {
  return h("span", { class: `badge ${STATE_CLASSES[state] || "neutral"}`, "data-state": state }, state);
}

export function progressBar(percent, label) {
  const bar = h("div", {
    class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": label || "progress",
  }, h("span"), h("em"));
  setProgress(bar, percent);
  return bar;
}

export function setProgress(bar, percent) {
  const value = Math.max(0, Math.min(100, Number(percent) || 0));
  bar.setAttribute("aria-valuenow", String(Math.round(value)));
  bar.querySelector("span").style.width = `${value}%`;
  bar.querySelector("em").textContent = `${Math.round(value)} %`;
}

// Inline style attributes are refused by the page's content policy; CSSOM is not.
export function styled(element, properties) {
  Object.assign(element.style, properties);
  return element;
}

export function when(iso) {
  if (!iso) return "—";
  const moment = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return moment.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 1 ? `${Math.round(value * 1000)} ms` : value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

export function shortId(id) {
  return id ? id.slice(-8) : "";
}

export function field(label, control, problemId) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    control,
    h("p", { class: "problem", id: problemId || `${id}-problem`, "aria-live": "polite" }));
}

export function table(headers, rows, caption) {
  return h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows));
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}

export function definitions(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]));
}

// A search snippet arrives HTML-escaped with the query's words in <mark>: rebuild it as
// text and <mark> elements, never as markup.
export function snippet(escaped) {
  const decode = (text) => text.replace(/&(lt|gt|quot|#x27|#39|amp);/g, (_, name) => (
    { lt: "<", gt: ">", quot: '"', "#x27": "'", "#39": "'", amp: "&" }[name]));
  const parts = escaped.split(/<mark>|<\/mark>/);
  return h("p", { class: "snippet" }, parts.map((part, index) => (index % 2 ? h("mark", {}, decode(part)) : decode(part))));
}
