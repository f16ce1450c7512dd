// The stage graph as SVG: a column per depth (a stage sits right of everything it waits
// for), each box coloured by its state, an arrow from each dependency.

const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 150;
const BOX_H = 46;
const GAP_X = 50;
const GAP_Y = 16;

function node(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

export function stageGraph(stages, runs) {
  const depth = {};
  const visit = (stage) => {
    if (depth[stage.name] !== undefined) return depth[stage.name];
    depth[stage.name] = 0;
    const parents = stage.depends_on.map((name) => stages.find((other) => other.name === name)).filter(Boolean);
    depth[stage.name] = parents.length ? 1 + Math.max(...parents.map(visit)) : 0;
    return depth[stage.name];
  };
  stages.forEach(visit);
  const columns = [];
  for (const stage of stages) (columns[depth[stage.name]] ||= []).push(stage);
  const place = {};
  columns.forEach((column, x) => column.forEach((stage, y) => {
    place[stage.name] = { x: x * (BOX_W + GAP_X), y: y * (BOX_H + GAP_Y) };
  }));
  const width = columns.length * (BOX_W + GAP_X) - GAP_X + 2;
  const height = Math.max(...columns.map((column) => column.length)) * (BOX_H + GAP_Y) - GAP_Y + 2;
  const svg = node("svg", { viewBox: `-1 -1 ${width + 2} ${height + 2}`, width: width + 2, height: height + 2, role: "img", class: "graph" });
  const names = stages.map((stage) => `${stage.name}: ${(runs[stage.name] || {}).state || "pending"}`);
  svg.append(node("title", {}, `Stage graph. ${names.join("; ")}`));
  const defs = node("defs", {});
  const marker = node("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.append(node("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }));
  defs.append(marker);
  svg.append(defs);
  for (const stage of stages) {
    for (const parent of stage.depends_on) {
      if (!place[parent]) continue;
      const from = place[parent];
      const to = place[stage.name];
      const x1 = from.x + BOX_W;
      const y1 = from.y + BOX_H / 2;
      const x2 = to.x;
      const y2 = to.y + BOX_H / 2;
      const middle = (x1 + x2) / 2;
      svg.append(node("path", { d: `M${x1},${y1} C${middle},${y1} ${middle},${y2} ${x2 - 2},${y2}`, class: "edge", "marker-end": "url(#arrow)" }));
    }
  }
  for (const stage of stages) {
    const run = runs[stage.name] || { state: "pending", attempts: 0, progress: 0 };
    const { x, y } = place[stage.name];
    const group = node("g", { class: `stage s-${run.state}`, "data-stage": stage.name, "data-state": run.state });
    group.append(node("rect", { x, y, width: BOX_W, height: BOX_H, rx: 6 }));
    group.append(node("text", { x: x + 8, y: y + 18, class: "name" }, stage.name.length > 19 ? `${stage.name.slice(0, 18)}…` : stage.name));
    const note = `${run.state}${run.attempts > 1 ? ` · ${run.attempts} tries` : ""}${stage.critical ? "" : " · optional"}`;
    group.append(node("text", { x: x + 8, y: y + 36, class: "note" }, note));
    svg.append(group);
  }
  return svg;
}
