// The designer page: file picker, palette, canvas, side form, live validation and Save.
import React, { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Background, Controls, ReactFlow, ViewportPortal, useReactFlow } from "@xyflow/react";
import { api } from "./api.js";
import { DataNode, StepNode } from "./nodes.jsx";
import { DataEdge } from "./edges.jsx";
import { dataHandles, dataSize, stepHandles, stepSize } from "./geometry.js";
import { COMPACT_BELOW, CompactContext, CompactEdges, fitViewport } from "./compact.jsx";
import { NEW_INPUT, autoLayout, connectionData, connectionProblem, edgesOf, identifier, sourceData, uniqueName } from "./model.js";
import { SideForm } from "./SideForm.jsx";
import { RunPanel } from "./RunPanel.jsx";
import { count, mark, restart } from "./perf.js";
import { openPipeline } from "./prefetch.js";
import { MetricsPanel } from "./MetricsPanel.jsx";
import { DraftPanel } from "./DraftPanel.jsx";
import { RunsMenu } from "./RunsMenu.jsx";
import { readUrl, useFollowRun, writeUrl } from "./follow.js";

const nodeTypes = { step: StepNode, data: DataNode };
const edgeTypes = { default: DataEdge };
const FIT = { maxZoom: 1, padding: 0.1 };
const MIN_ZOOM = 0.05;
const NO_EDGES = []; // compact: compact.jsx draws the edges

// Every node's box as first drawn (the size geometry.js expects), for the zoom of the fit.
function layoutBoxes(graph, positions) {
  const box = (id, measured) => ({ position: positions[id] || { x: 0, y: 0 }, measured });
  return [
    ...sourceData(graph).map((ref) => box(`data:${ref.name}`, dataSize(ref))),
    ...graph.steps.map((step) => box(step.id, stepSize(step, null, { problems: [], run: null }))),
  ];
}
const FILL = { position: "absolute", inset: 0 };
const EMPTY = (variable) => ({
  format: 1, variable, description: null, parameters: [], data_references: [], datasets: [], pipeline_data: [], steps: [],
});

const INITIAL = readUrl(); // ?path=...&draft=...&run=<dag_id>/<run_id>: reopened on reload

export default function App() {
  const flow = useReactFlow();
  const [me, setMe] = useState(null); // null until /api/me answers: no badge flickers meanwhile
  const [fileList, setFileList] = useState([]);
  const [path, setPath] = useState(INITIAL.path);
  const [shown, setShown] = useState(null); // the file (or the draft's file) on the canvas
  const [draft, setDraft] = useState(null); // the open PipelineDraft's summary, and its graph
  const [baseHash, setBaseHash] = useState(null);
  const [graph, setGraph] = useState(null);
  const [positions, setPositions] = useState({});
  const [sizes, setSizes] = useState({}); // React Flow's measurements, where geometry.js guessed wrong
  const [palette, setPalette] = useState({ scripts: [], modules: [], datastores: [], compute_targets: [] });
  const [problems, setProblems] = useState([]);
  const [status, setStatus] = useState("");
  const [selected, setSelected] = useState(null);
  const [edited, setEdited] = useState(false);
  const [fitted, setFitted] = useState(false); // the opened pipeline is laid out and in view
  const [compact, setCompact] = useState(false); // zoomed far out: nodes show their name only
  const canvas = useRef(null);
  // {dag_id, run_id, state, steps: {step name: {...}}}; a reload follows the URL's run again
  const [run, setRun] = useState(INITIAL.run && { ...INITIAL.run, url: "", state: "queued", steps: {} });
  const readOnly = !me?.can_edit;
  useFollowRun(run, setRun, setStatus);
  useEffect(() => {
    writeUrl({ path: shown, draft: draft?.id, run });
  }, [shown, draft?.id, run?.dag_id, run?.run_id]); // eslint-disable-line react-hooks/exhaustive-deps

  useEffect(() => {
    api.me().then(setMe).catch((e) => setStatus(e.message));
    api.files().then((d) => setFileList(d.files)).catch(() => {});
  }, []);

  const load = useCallback(async (target) => {
    setStatus(`opening ${target}`);
    setSelected(null);
    setFitted(false);
    restart();
    mark("open:start");
    // The palette and the pipeline are asked for at once (the pipeline maybe already, by
    // index.html), and the graph is drawn without waiting for the palette: a module step shows
    // its connected ports until the palette brings the module's other ones.
    const pipeline = openPipeline(target);
    const paletteProblem = api.palette(target).then(
      (p) => {
        mark("open:palette");
        setPalette(p);
        return null;
      },
      (e) => e,
    );
    try {
      const opened = await pipeline;
      mark("open:fetched");
      setGraph(opened.graph);
      setBaseHash(opened.hash);
      const saved = opened.layout?.nodes || {};
      const laidOut = { ...autoLayout(opened.graph), ...saved };
      setPositions(laidOut);
      mark("open:layout");
      // The view is fitted with the first render, not after it: the nodes' sizes are known
      // (geometry.js), so the fit is computed here (fitView's own rule), and so is whether the
      // nodes are drawn compact. A flow mounting now fits itself (the fitView prop); one that
      // shows an earlier pipeline is moved.
      const view = fitViewport(layoutBoxes(opened.graph, laidOut), canvas.current?.clientWidth,
        canvas.current?.clientHeight, { minZoom: MIN_ZOOM, maxZoom: FIT.maxZoom, padding: FIT.padding });
      setCompact(view !== null && view.zoom < COMPACT_BELOW);
      if (view !== null && flow.viewportInitialized) flow.setViewport(view);
      setFitted(true);
      setProblems(opened.problems);
      setEdited(false);
      setDraft(null);
      setShown(target);
      setStatus(`opened ${target}`);
      paletteProblem.then((e) => e && setStatus(e.message));
    } catch (e) {
      if (e.status !== 404) return setStatus(e.message);
      paletteProblem.then((p) => p && setStatus(p.message));
      const stem = target.split("/").pop().replace(/\.py$/, "");
      setGraph(EMPTY(identifier(stem)));
      setBaseHash(null);
      setPositions({});
      setProblems([]);
      setDraft(null);
      setShown(target);
      setStatus(`new pipeline ${target}`);
    }
  }, [flow]);

  // a draft on the canvas: the designer's own graph (editable), or a read-only one drawn from
  // the lowered pipeline of a draft made in Python; a file saved from it is a new file
  const showDraft = useCallback((opened) => {
    setSelected(null);
    setGraph(opened.graph);
    setBaseHash(null);
    setPositions({ ...autoLayout(opened.graph), ...(opened.layout?.nodes || {}) });
    setProblems([]);
    setEdited(false);
    setDraft({ ...opened.draft, graph: opened.graph });
    if (opened.draft.path) {
      setPath(opened.draft.path);
      setShown(opened.draft.path);
      api.palette(opened.draft.path).then(setPalette).catch(() => {});
    }
    requestAnimationFrame(() => flow.fitView({ maxZoom: 1, padding: 0.1 }));
  }, [flow]);

  useEffect(() => {
    if (INITIAL.draft)
      api.openDraft(INITIAL.draft, INITIAL.path).then(showDraft).catch((e) => setStatus(e.message));
    else if (path) load(path);
  }, []); // eslint-disable-line react-hooks/exhaustive-deps

  // live validation: the compiler's checks on every change (debounced)
  useEffect(() => {
    if (!graph || !edited || readOnly) return undefined;
    const timer = setTimeout(() => {
      api
        .validate(path, graph)
        .then((r) => setProblems(r.problems))
        .catch((e) => setProblems(e.problems?.length ? e.problems : [{ step: null, field: null, message: e.message }]));
    }, 400);
    return () => clearTimeout(timer);
  }, [graph, edited, path, readOnly]);

  const change = useCallback((fn) => {
    setGraph((g) => {
      const next = structuredClone(g);
      fn(next);
      return next;
    });
    setEdited(true);
  }, []);

  const moduleOf = (step) => palette.modules.find((m) => m.module === step.module);

  // Node objects are reused while nothing they show changed, so React Flow re-renders only the
  // nodes an edit or a measurement touched (a 200-step pipeline stays interactive). `data` is
  // kept apart from position and size: a measurement or a drag makes a new node object but
  // hands the (memoised) node component the same data, so it does not render again. Until the
  // browser has measured a node, it carries the size and port positions geometry.js expects,
  // so the first frame already shows every node and edge in the fitted view.
  const nodeCache = useRef(new Map());
  const nodes = useMemo(() => {
    if (!graph) return [];
    const cache = nodeCache.current;
    const next = new Map();
    const keep = (id, type, parts, makeData, guessSize, handlesFor) => {
      const old = cache.get(id);
      const same = old && old.parts.every((p, i) => p === parts[i]);
      const data = same ? old.data : makeData();
      const guess = same ? old.guess : guessSize(data);
      const position = positions[id];
      const size = sizes[id];
      const node = same && old.position === position && old.size === size
        ? old.node
        : {
          id, type, data, position: position || (type === "data" ? { x: 40, y: 40 } : { x: 80, y: 80 }),
          measured: size || guess, handles: handlesFor(size || guess),
        };
      next.set(id, { parts, data, guess, position, size, node });
      return node;
    };
    const list = sourceData(graph).map((ref) =>
      keep(`data:${ref.name}`, "data", [ref], () => ({ ref }), () => dataSize(ref), (sz) => dataHandles(ref, sz)));
    for (const step of graph.steps) {
      const mine = problems.filter((p) => p.step === step.name);
      const module = moduleOf(step);
      const isSelected = selected === step.id;
      const runStep = run?.steps?.[step.name];
      const runKey = runStep ? JSON.stringify(runStep) : "";
      const parts = [step, module, isSelected, JSON.stringify(mine), runKey];
      list.push(keep(step.id, "step", parts,
        () => ({ step, module, problems: mine, selected: isSelected, run: runStep }),
        (data) => stepSize(step, module, data), (sz) => stepHandles(step, module, sz)));
    }
    nodeCache.current = next;
    return list;
  }, [graph, positions, sizes, problems, selected, palette, run]); // eslint-disable-line react-hooks/exhaustive-deps

  const edges = useMemo(() => (graph ? edgesOf(graph) : []), [graph]);
  useEffect(() => {
    if (graph) mark("open:rendered"); // the first commit holding the graph
    if (fitted) mark("open:fitted");
    if (selected) mark("open:selected");
  }, [graph, selected, fitted]);

  const onNodesChange = useCallback((changes) => {
    const measured = changes.filter((c) => c.type === "dimensions" && c.dimensions);
    if (measured.length) {
      mark("open:measured");
      count("resized", measured.length); // sizes geometry.js guessed wrong
    }
    if (measured.length)
      setSizes((s) => {
        const next = { ...s };
        for (const c of measured) next[c.id] = c.dimensions;
        return next;
      });
    setPositions((p) => {
      const next = { ...p };
      for (const c of changes) if (c.type === "position" && c.position) next[c.id] = c.position;
      return next;
    });
  }, []);

  // (stable: React Flow copies every changed prop into its store, which re-runs the selectors
  // of every node, handle and edge)
  const onNodeClick = useCallback((_, n) => {
    mark("open:click");
    setSelected(n.id);
  }, []);
  const onPaneClick = useCallback(() => setSelected(null), []);
  const onMove = useCallback((_, viewport) => setCompact(viewport.zoom < COMPACT_BELOW), []);

  const isValidConnection = useCallback(
    (c) => !readOnly && connectionProblem(graph, palette.modules, c) === null,
    [graph, palette, readOnly],
  );

  const onConnect = useCallback(
    (c) => {
      const problem = connectionProblem(graph, palette.modules, c);
      if (problem) return setStatus(`cannot connect: ${problem}`);
      const data = connectionData(graph, c);
      change((g) => {
        const step = g.steps.find((s) => s.id === c.target);
        if (step.kind === "ModuleStep") step.inputs_map[c.targetHandle] = data;
        else {
          step.inputs.push(data);
          step.arguments.push(`--${data}`, { data, parameter: null });
        }
      });
      setStatus(`connected ${data} to ${c.target}`);
    },
    [graph, palette, change],
  );

  const onDrop = useCallback(
    (event) => {
      event.preventDefault();
      if (readOnly) return;
      const raw = event.dataTransfer.getData("application/x-mlpipe");
      if (!raw) return;
      const item = JSON.parse(raw);
      const position = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
      const taken = new Set([...graph.steps.map((s) => s.id), ...sourceData(graph).map((d) => d.name), ...graph.pipeline_data.map((d) => d.name)]);
      const step = {
        editable: true, reason: null, compute_target: null, allow_reuse: true, script_name: null,
        source_directory: null, arguments: [], inputs: [], outputs: [], environment_variables: {},
        module: null, version: null, inputs_map: {}, outputs_map: {}, params: {},
      };
      if (item.kind === "script") {
        const name = uniqueName(taken, identifier(item.script_name.replace(/\.py$/, "")));
        Object.assign(step, { id: name, name, kind: "PythonScriptStep", script_name: item.script_name, source_directory: item.source_directory });
      } else if (item.kind === "module") {
        const name = uniqueName(taken, identifier(item.module));
        Object.assign(step, { id: name, name, kind: "ModuleStep", module: item.module, params: { ...item.params } });
        const store = palette.datastores.find((d) => d.default)?.name ?? null;
        const outs = item.outputs.map((o) => [o.name, uniqueName(taken, `${name}_${o.name}`)]);
        step.outputs_map = Object.fromEntries(outs);
        change((g) => outs.forEach(([, data]) => g.pipeline_data.push({ name: data, datastore: store })));
      } else if (item.kind === "datastore") {
        const name = uniqueName(taken, "data");
        change((g) => g.data_references.push({ name, datastore: item.name, path_on_datastore: "", mode: "mount" }));
        setPositions((p) => ({ ...p, [`data:${name}`]: position }));
        setSelected(`data:${name}`);
        return;
      } else if (item.kind === "dataset") {
        // consumed under its own name (v1 samples: as_named_input(<dataset name>)), a file
        // dataset mounted, a tabular one directly (it cannot be mounted)
        const name = uniqueName(taken, identifier(item.name));
        const mode = item.type === "file" ? "mount" : "direct";
        change((g) => (g.datasets ??= []).push({ name, dataset: item.name, version: null, mode, path_on_compute: null }));
        setPositions((p) => ({ ...p, [`data:${name}`]: position }));
        setSelected(`data:${name}`);
        return;
      }
      change((g) => g.steps.push(step));
      setPositions((p) => ({ ...p, [step.id]: position }));
      setSelected(step.id);
    },
    [graph, flow, change, readOnly, palette],
  );

  const save = async () => {
    setStatus("saving");
    try {
      const result = await api.save({ path, graph, base_hash: baseHash, layout: { nodes: positions } });
      setBaseHash(result.hash);
      setEdited(false);
      setStatus(result.written ? `saved ${result.path}` : `saved ${result.path} (unchanged)`);
    } catch (e) {
      if (e.problems?.length) setProblems(e.problems);
      setStatus(`save failed: ${e.message}`);
    }
  };

  const dragStart = (item) => (event) => {
    event.dataTransfer.setData("application/x-mlpipe", JSON.stringify(item));
    event.dataTransfer.effectAllowed = "move";
  };

  const selectedStep = graph?.steps.find((s) => s.id === selected);

  return (
    <div className="designer">
      <header>
        <strong>Pipelines designer</strong>
        <input list="files" value={path} onChange={(e) => setPath(e.target.value)} placeholder="folder/pipeline.py" data-testid="path" />
        <datalist id="files">{fileList.map((f) => <option key={f} value={f} />)}</datalist>
        <button onClick={() => load(path)} data-testid="open">Open</button>
        {!readOnly && graph && <button onClick={save} data-testid="save">Save</button>}
        {me?.can_run && graph && !edited && baseHash && (
          <RunPanel path={path} variable={graph.variable} setRun={setRun} setStatus={setStatus} canEdit={me?.can_edit} />
        )}
        {me && graph && (
          <DraftPanel path={shown || path} graph={graph} positions={positions} draft={draft} showDraft={showDraft}
            setDraft={setDraft} me={me} setRun={setRun} setStatus={setStatus} />
        )}
        <RunsMenu run={run} setRun={setRun} setStatus={setStatus}
          query={draft ? { dag_id: draft.dag_id } : shown && baseHash && graph ? { path: shown, variable: graph.variable } : null} />
        {me && readOnly && <span className="badge">read only</span>}
        {me && <span className="user" data-testid="user">{me.user}</span>}
        <span className="status" data-testid="status">{status}</span>
      </header>
      <aside className="palette" data-testid="palette">
        <h4>Scripts</h4>
        {palette.scripts.map((s) => (
          <div key={`${s.source_directory}/${s.script_name}`} className="item" draggable={!readOnly}
            onDragStart={dragStart({ kind: "script", ...s })} data-testid={`palette-script-${s.script_name}`}>
            {s.source_directory}/{s.script_name}
          </div>
        ))}
        <h4>Modules</h4>
        {palette.modules.map((m) => (
          <div key={m.module} className="item" draggable={!readOnly} onDragStart={dragStart({ kind: "module", ...m })}
            data-testid={`palette-module-${m.module}`} title={m.description || ""}>
            {m.module} <small>v{m.version}</small>
          </div>
        ))}
        <h4>Datastores</h4>
        {palette.datastores.map((d) => (
          <div key={d.name} className="item" draggable={!readOnly} onDragStart={dragStart({ kind: "datastore", ...d })}
            data-testid={`palette-datastore-${d.name}`}>
            {d.name} <small>{d.type}</small>
          </div>
        ))}
        {palette.datasets?.length > 0 && <h4>Datasets</h4>}
        {(palette.datasets ?? []).map((d) => (
          <div key={d.name} className="item" draggable={!readOnly} onDragStart={dragStart({ kind: "dataset", ...d })}
            data-testid={`palette-dataset-${d.name}`} title={d.description || ""}>
            {d.name} <small>{d.type} v{d.version}</small>
          </div>
        ))}
        <h4>Compute</h4>
        {palette.compute_targets.map((t) => (
          <div key={t.name} className="item static">
            {t.name} <small>{t.gpus ? `${t.gpus} GPU · pool ${t.pool} (${t.pool_slots} slots)` : t.vm_size}</small>
          </div>
        ))}
      </aside>
      <main onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = "move"; }} onDrop={onDrop} data-testid="canvas" data-fitted={fitted ? "1" : "0"} ref={canvas}>
        {graph && (
          <CompactContext.Provider value={compact}>
          <ReactFlow
            nodes={nodes}
            edges={compact ? NO_EDGES : edges}
            nodeTypes={nodeTypes}
            edgeTypes={edgeTypes}
            onNodesChange={onNodesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            onNodeClick={onNodeClick}
            onPaneClick={onPaneClick}
            nodesConnectable={!readOnly}
            fitView
            fitViewOptions={FIT}
            minZoom={MIN_ZOOM}
            onMove={onMove}
            onlyRenderVisibleElements
            style={FILL}
          >
            <Background />
            <Controls />
            {compact && (
              <ViewportPortal>
                <CompactEdges nodes={nodes} edges={edges} />
              </ViewportPortal>
            )}
          </ReactFlow>
          </CompactContext.Provider>
        )}
        {selectedStep && run?.steps?.[selectedStep.name] && (
          <MetricsPanel path={path} run={run} stepName={selectedStep.name} close={() => setSelected(null)} />
        )}
      </main>
      <SideForm graph={graph} selected={selected} change={change} palette={palette} problems={problems} readOnly={readOnly}
        renamed={(old, id) => { setPositions((p) => ({ ...p, [id]: p[old] })); setSelected(id); }} />
    </div>
  );
}
