// Where a node's ports are and how big the node will be, before the browser has measured it.
//
// React Flow draws a node once it knows the node's size and an edge once it knows where both
// ports are, which it otherwise learns by measuring every node after the first render (a
// ResizeObserver pass, then every node and edge rendered again). Handing each node its size and
// port positions (`measured`, `handles`) lets the first frame show the nodes, the edges and the
// fitted view at once; the measurement that follows changes only the few nodes guessed wrong.
// The size comes from the node's text, measured on a canvas in the fonts style.css gives it.
import { Position } from "@xyflow/react";
import { NEW_INPUT, dataLabel, inputsOf, outputsOf } from "./model.js";

const HANDLE = 12; // style.css: 10 px, plus React Flow's 1 px border
const PAD = { x: 24, y: 16 }; // .step, .dataref: padding 8px 12px
const MIN_WIDTH = 170;
const PORT_GAP = 8; // .portnames: gap

// A step's ports as its node shows them: a module's declared ports, or the data it reads and
// writes, plus the `+` input of an editable script step.
export function portsOf(step, module) {
  let inputs = inputsOf(step);
  if (step.kind === "ModuleStep" && module)
    inputs = module.inputs.map((p) => ({ port: p.name, data: step.inputs_map[p.name] || "" }));
  else if (step.kind !== "ModuleStep" && step.editable) inputs = [...inputs, { port: NEW_INPUT, data: "" }];
  let outputs = outputsOf(step);
  if (step.kind === "ModuleStep" && module)
    outputs = module.outputs.map((p) => ({ port: p.name, data: step.outputs_map[p.name] || "" }));
  return { inputs, outputs };
}

let fonts = null; // {kind|name|detail: {font, height}}, read once from the stylesheet

function measureFonts() {
  const probe = document.createElement("div");
  probe.className = "step";
  probe.style.cssText = "position:absolute;visibility:hidden;left:-9999px;top:0";
  for (const cls of ["kind", "name", "detail"]) {
    const line = document.createElement("div");
    line.className = cls;
    line.textContent = "Xg";
    probe.appendChild(line);
  }
  document.body.appendChild(probe);
  const out = {};
  for (const line of probe.children) {
    const style = getComputedStyle(line);
    out[line.className] = {
      font: `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`,
      height: line.getBoundingClientRect().height,
    };
  }
  out.border = parseFloat(getComputedStyle(probe).borderLeftWidth) || 1;
  probe.remove();
  return out;
}

let canvas = null;
function width(text, font) {
  canvas ??= document.createElement("canvas").getContext("2d");
  canvas.font = font;
  return canvas.measureText(text).width;
}

// lines: [[class, text]]; an empty line takes no room (an empty div)
function boxOf(lines, border) {
  fonts ??= measureFonts();
  let widest = 0;
  let height = 0;
  for (const [cls, text, extra = 0] of lines) {
    if (!text) continue;
    widest = Math.max(widest, width(text, fonts[cls].font) + extra);
    height += fonts[cls].height;
  }
  return {
    width: Math.round(Math.max(MIN_WIDTH, Math.ceil(widest)) + PAD.x + 2 * border),
    height: Math.round(height + PAD.y + 2 * border),
  };
}

export function stepSize(step, module, data) {
  const { inputs, outputs } = portsOf(step, module);
  const ins = inputs.filter((p) => p.port !== NEW_INPUT).map((p) => p.port).join(", ");
  const outs = `→ ${outputs.map((p) => p.port).join(", ")}`;
  fonts ??= measureFonts();
  const portLine = width(ins, fonts.detail.font) + PORT_GAP; // .portnames: two spans side by side
  const border = data.problems.length || data.run ? 2 : 1; // .has-problem, .state-*
  return boxOf(
    [
      ["kind", `${step.kind}${step.compute_target ? ` · ${step.compute_target}` : ""}`],
      ["name", step.name],
      ["detail", step.script_name || step.module || step.reason || ""],
      ["detail", step.allow_reuse ? "" : "allow_reuse=False"],
      ["detail", outs, portLine],
    ],
    border,
  );
}

export function dataSize(ref) {
  const [kind, detail] = dataLabel(ref);
  return boxOf(
    [
      ["kind", kind],
      ["name", ref.name],
      ["detail", detail],
    ],
    1,
  );
}

// Port boxes relative to the node, where nodes.jsx puts its <Handle>s: inputs on the left edge
// and outputs on the right, the i-th of n at (i + 1) / (n + 1) of the height.
function column(ports, type, position, x, size) {
  return ports.map((p, i) => ({
    id: p.port,
    type,
    position,
    x: x - HANDLE / 2,
    y: (size.height * (i + 1)) / (ports.length + 1) - HANDLE / 2,
    width: HANDLE,
    height: HANDLE,
  }));
}

export function stepHandles(step, module, size) {
  const { inputs, outputs } = portsOf(step, module);
  return [
    ...column(inputs, "target", Position.Left, 0, size),
    ...column(outputs, "source", Position.Right, size.width, size),
  ];
}

export function dataHandles(ref, size) {
  return column([{ port: ref.name }], "source", Position.Right, size.width, size);
}
