// Small SVG charts: a line per series over the last hour, bars for counts. Each has a
// text title naming its latest values, for screen readers.

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#be185d", "#4b5563"];

function node(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export function lineChart(buckets, series, { title, unit = "", height = 150 } = {}) {
  const width = 560;
  const pad = { left: 44, right: 10, top: 10, bottom: 22 };
  const values = series.flatMap((item) => item.values.filter((value) => value !== null && value !== undefined));
  const top = Math.max(1, ...values);
  const x = (index) => pad.left + (index / Math.max(1, buckets.length - 1)) * (width - pad.left - pad.right);
  const y = (value) => height - pad.bottom - (value / top) * (height - pad.top - pad.bottom);
  const latest = series.map((item) => `${item.name} ${[...item.values].reverse().find((value) => value !== null) ?? "none"}${unit}`).join(", ");
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", preserveAspectRatio: "xMidYMid meet" });
  svg.append(node("title", {}, `${title}: latest ${latest || "no data"}`));
  for (const fraction of [0, 0.5, 1]) {
    const level = top * fraction;
    svg.append(node("line", { x1: pad.left, x2: width - pad.right, y1: y(level), y2: y(level), class: "grid" }));
    svg.append(node("text", { x: pad.left - 4, y: y(level) + 4, class: "axis", "text-anchor": "end" }, `${Number(level.toFixed(2))}${unit}`));
  }
  const labelled = [0, Math.floor(buckets.length / 2), buckets.length - 1];
  for (const index of new Set(labelled)) {
    if (buckets[index] === undefined) continue;
    const label = new Date(buckets[index] * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const anchor = index === 0 ? "start" : index === buckets.length - 1 ? "end" : "middle";
    svg.append(node("text", { x: x(index), y: height - 6, class: "axis", "text-anchor": anchor }, label));
  }
  series.forEach((item, number) => {
    let path = "";
    item.values.forEach((value, index) => {
      if (value === null || value === undefined) return;
      path += `${path && item.values[index - 1] !== null && item.values[index - 1] !== undefined ? "L" : "M"}${x(index).toFixed(1)},${y(value).toFixed(1)} `;
    });
    if (path) svg.append(node("path", { d: path, class: "series", stroke: COLOURS[number % COLOURS.length] }));
    item.values.forEach((value, index) => {
      if (value === null || value === undefined) return;
      if (item.values[index - 1] === null || item.values[index - 1] === undefined) {
        svg.append(node("circle", { cx: x(index), cy: y(value), r: 2, fill: COLOURS[number % COLOURS.length] }));
      }
    });
  });
  const legend = document.createElement("ul");
  legend.className = "legend";
  series.forEach((item, number) => {
    const entry = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = COLOURS[number % COLOURS.length];
    entry.append(swatch, item.name);
    legend.append(entry);
  });
  const figure = document.createElement("figure");
  figure.className = "chart-box";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, svg, legend);
  return figure;
}

export function barChart(items, title) {
  const width = 560;
  const height = 120;
  const top = Math.max(1, ...items.map((item) => item.value));
  const step = (width - 20) / Math.max(1, items.length);
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  svg.append(node("title", {}, `${title}: ${items.map((item) => `${item.label} ${item.value}`).join(", ")}`));
  items.forEach((item, index) => {
    const barHeight = (item.value / top) * (height - 30);
    svg.append(node("rect", { x: 10 + index * step + 2, y: height - 18 - barHeight, width: Math.max(2, step - 4), height: barHeight, class: "bar-rect" }));
    if (items.length <= 24 || index % Math.ceil(items.length / 12) === 0) {
      svg.append(node("text", { x: 10 + index * step + step / 2, y: height - 4, class: "axis", "text-anchor": "middle" }, item.label));
    }
  });
  return svg;
}
