// Pure helpers over the designer's graph (mlpipe_provider/designer/graph.py): ports, edges,
// the checks made when a connection is dropped, and a first layout by depth.

export const NEW_INPUT = "__new_input__";

export function inputsOf(step) {
  if (step.kind === "ModuleStep") return Object.entries(step.inputs_map).map(([p, d]) => ({ port: p, data: d }));
  return step.inputs.map((d) => ({ port: d, data: d }));
}

export function outputsOf(step) {
  if (step.kind === "ModuleStep") return Object.entries(step.outputs_map).map(([p, d]) => ({ port: p, data: d }));
  return step.outputs.map((d) => ({ port: d, data: d }));
}

export function producers(graph) {
  const by = {};
  for (const s of graph.steps) for (const o of outputsOf(s)) by[o.data] ??= s.id;
  return by;
}

// Source nodes: DataReferences and registered datasets (both drawn as "data:<name>" nodes).
export const sourceData = (graph) => [...graph.data_references, ...(graph.datasets ?? [])];
export const isDataset = (d) => typeof d?.dataset === "string";
export function dataLabel(d) {
  if (isDataset(d)) return [`Dataset · ${d.dataset}${d.version ? ` v${d.version}` : ""}`, d.mode];
  return [`DataReference · ${d.datastore}`, d.path_on_datastore || ""];
}

// The data a connection carries: a source node's handle is its data name, a step's output
// handle is its port (a module's port names differ from the PipelineData bound to them).
export function connectionData(graph, c) {
  if (c.source.startsWith("data:")) return c.sourceHandle;
  const step = graph.steps.find((s) => s.id === c.source);
  return (step && outputsOf(step).find((o) => o.port === c.sourceHandle)?.data) ?? c.sourceHandle;
}

export function edgesOf(graph) {
  const made = producers(graph);
  const port = {}; // data name -> the producing step's output port
  for (const s of graph.steps) for (const o of outputsOf(s)) port[o.data] ??= o.port;
  const refs = new Set(sourceData(graph).map((d) => d.name));
  const edges = [];
  for (const s of graph.steps) {
    for (const i of inputsOf(s)) {
      const source = made[i.data] ?? (refs.has(i.data) ? `data:${i.data}` : null);
      if (source === null) continue;
      edges.push({
        id: `${source}->${s.id}:${i.port}`,
        source,
        sourceHandle: made[i.data] ? port[i.data] : i.data,
        target: s.id,
        targetHandle: i.port,
        label: i.data,
      });
    }
  }
  return edges;
}

function reaches(graph, from, to) {
  // is `to` downstream of `from`?
  const made = producers(graph);
  const next = {};
  for (const s of graph.steps)
    for (const i of inputsOf(s)) if (made[i.data]) (next[made[i.data]] ??= []).push(s.id);
  const seen = new Set();
  const stack = [from];
  while (stack.length) {
    const n = stack.pop();
    if (n === to) return true;
    if (seen.has(n)) continue;
    seen.add(n);
    stack.push(...(next[n] || []));
  }
  return false;
}

// Why a connection may not be made, or null: checked while dragging and again on drop.
export function connectionProblem(graph, modules, c) {
  const target = graph.steps.find((s) => s.id === c.target);
  if (!target) return "connect to a step's input";
  if (!target.editable) return `step ${target.name} cannot be edited in the designer`;
  if (c.source === c.target) return "a step cannot feed itself";
  if (!c.source.startsWith("data:") && reaches(graph, c.target, c.source)) return "that would make a cycle";
  const data = connectionData(graph, c);
  if (target.kind === "ModuleStep") {
    if ((graph.datasets ?? []).some((d) => d.name === data))
      return "a module port takes a DataReference or PipelineData, not a dataset";
    if (target.inputs_map[c.targetHandle]) return `input ${c.targetHandle} is already connected`;
    const mod = modules.find((m) => m.module === target.module);
    const port = mod?.inputs.find((p) => p.name === c.targetHandle);
    const type = dataType(graph, modules, data);
    if (port && type && !port.data_types.includes(type))
      return `input ${c.targetHandle} takes ${port.data_types.join(" or ")}, not ${type}`;
  } else if (target.inputs.includes(data)) return `${target.name} already reads ${data}`;
  return null;
}

function dataType(graph, modules, name) {
  for (const s of graph.steps) {
    if (s.kind !== "ModuleStep") continue;
    const port = Object.entries(s.outputs_map).find(([, d]) => d === name);
    if (port) return modules.find((m) => m.module === s.module)?.outputs.find((o) => o.name === port[0])?.data_type;
  }
  return null;
}

export function autoLayout(graph) {
  const made = producers(graph);
  const depth = {};
  const visit = (s) => {
    if (depth[s.id] !== undefined) return depth[s.id];
    depth[s.id] = 1;
    let d = 1;
    for (const i of inputsOf(s)) {
      const p = graph.steps.find((x) => x.id === made[i.data]);
      if (p && p !== s) d = Math.max(d, visit(p) + 1);
    }
    depth[s.id] = d;
    return d;
  };
  graph.steps.forEach(visit);
  // Levels left to right; a long pipeline wraps every BAND levels into a new band below, so
  // a 200-step chain stays about as wide as it is tall instead of one row 60,000 px long.
  const byLevel = {};
  sourceData(graph).forEach((d) => (byLevel[0] ??= []).push(`data:${d.name}`));
  graph.steps.forEach((s) => (byLevel[depth[s.id]] ??= []).push(s.id));
  const levels = Object.keys(byLevel).map(Number).sort((a, b) => a - b);
  const BAND = Math.max(6, Math.ceil(Math.sqrt(levels.length * 1.5)));
  const nodes = {};
  let top = 40;
  for (let start = 0; start <= (levels.at(-1) ?? 0); start += BAND) {
    const band = levels.filter((l) => l >= start && l < start + BAND);
    let tallest = 1;
    for (const level of band) {
      byLevel[level].forEach((id, row) => (nodes[id] = { x: 40 + (level - start) * 300, y: top + row * 140 }));
      tallest = Math.max(tallest, byLevel[level].length);
    }
    if (band.length) top += tallest * 140 + 80;
  }
  return nodes;
}

export function identifier(text) {
  let out = text.replace(/[^A-Za-z0-9_]/g, "_").replace(/^_+|_+$/g, "") || "step";
  if (/^[0-9]/.test(out)) out = `s_${out}`;
  return out;
}

export function uniqueName(taken, base) {
  let name = base;
  for (let n = 2; taken.has(name); n++) name = `${base}_${n}`;
  return name;
}
