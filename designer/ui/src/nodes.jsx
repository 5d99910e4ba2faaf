// Canvas nodes: a step with one handle per input and output port, and a DataReference source.
import React, { memo, useContext, useEffect, useRef } from "react";
import { Handle, Position, useUpdateNodeInternals } from "@xyflow/react";
import { NEW_INPUT, dataLabel } from "./model.js";
import { portsOf } from "./geometry.js";
import { CompactContext, PortMarks } from "./compact.jsx";

function ports(list, type, position) {
  return list.map((p, i) => (
    <Handle
      key={`${type}:${p.port}`}
      id={p.port}
      type={type}
      position={position}
      style={{ top: `${((i + 1) * 100) / (list.length + 1)}%` }}
      title={`${p.port}${p.data !== p.port ? ` (${p.data})` : ""}`}
      data-testid={`${type}-${p.port}`}
    />
  ));
}

function StepNodeView({ id, data, width, height }) {
  const { step, module, problems, selected, run } = data;
  const compact = useContext(CompactContext);
  const updateNodeInternals = useUpdateNodeInternals();
  const { inputs, outputs } = portsOf(step, module); // geometry.js places the same ports
  // React Flow measures handles with the node; ports added later must be measured again
  const signature = `${inputs.map((p) => p.port).join("|")}#${outputs.map((p) => p.port).join("|")}`;
  // (not on mount: React Flow measures a new node itself, and 200 extra updates cost seconds)
  const measuredSignature = useRef(signature);
  useEffect(() => {
    if (compact || measuredSignature.current === signature) return; // (compact: no handles to measure)
    measuredSignature.current = signature;
    updateNodeInternals(id);
  }, [id, signature, updateNodeInternals, compact]);
  const cls = ["step", problems.length ? "has-problem" : "", step.editable ? "" : "readonly", selected ? "selected" : "",
    run ? `state-${run.state}` : ""];
  if (compact)
    return (
      <div className={`${cls.join(" ")} compact`} data-testid={`step-${step.id}`} data-state={run?.state || ""}
        title={[step.name, ...problems.map((p) => p.message)].join("\n")} style={{ width, height }}>
        <div className="name">{step.name}</div>
        <PortMarks inputs={inputs} outputs={outputs} />
      </div>
    );
  return (
    <div className={cls.join(" ")} data-testid={`step-${step.id}`} data-state={run?.state || ""}
      title={problems.map((p) => p.message).join("\n")}>
      {ports(inputs, "target", Position.Left)}
      <div className="kind">{step.kind}{step.compute_target ? ` · ${step.compute_target}` : ""}</div>
      <div className="name">{step.name}</div>
      <div className="detail">{step.script_name || step.module || step.reason || ""}</div>
      {!step.allow_reuse && <div className="detail">allow_reuse=False</div>}
      <div className="portnames">
        <span>{inputs.filter((p) => p.port !== NEW_INPUT).map((p) => p.port).join(", ")}</span>
        <span>→ {outputs.map((p) => p.port).join(", ")}</span>
      </div>
      {run && <RunInfo run={run} />}
      {ports(outputs, "source", Position.Right)}
    </div>
  );
}

// What the last run did with the step: its state, the run a reused step reused, its metrics,
// a failed step's log tail and the link to its Airflow task log.
function RunInfo({ run }) {
  const metrics = Object.entries(run.metrics || {});
  return (
    <div className="run" data-testid="run-info">
      <div className="runstate">
        {run.state}
        {" · "}
        <a href={run.log_url} target="_blank" rel="noreferrer" data-testid="log-link">log</a>
      </div>
      {run.reused && (
        <div className="detail" data-testid="reused-from">
          reused {run.reused.url
            ? <a href={run.reused.url} target="_blank" rel="noreferrer">run {run.reused.pipeline_run_id}</a>
            : `run ${run.reused.pipeline_run_id}`}
        </div>
      )}
      {metrics.length > 0 && (
        <table className="metrics" data-testid="metrics">
          <tbody>
            {metrics.map(([k, v]) => (
              <tr key={k}><td>{k}</td><td>{typeof v === "number" ? Number(v.toPrecision(4)) : String(v)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
      {run.error && <pre className="error" data-testid="error-tail">{run.error}</pre>}
    </div>
  );
}

function DataNodeView({ data, width, height }) {
  const { ref } = data;
  if (useContext(CompactContext))
    return (
      <div className="dataref compact" data-testid={`data-${ref.name}`} title={ref.name} style={{ width, height }}>
        <div className="name">{ref.name}</div>
        <PortMarks inputs={[]} outputs={[{ port: ref.name }]} />
      </div>
    );
  return (
    <div className="dataref" data-testid={`data-${ref.name}`}>
      <div className="kind">{dataLabel(ref)[0]}</div>
      <div className="name">{ref.name}</div>
      <div className="detail">{dataLabel(ref)[1]}</div>
      <Handle id={ref.name} type="source" position={Position.Right} data-testid={`source-${ref.name}`} />
    </div>
  );
}

// React Flow hands a node its position too; these nodes show only their data (and, compact,
// their size), so a drag (new props, same data) does not render them again.
const sameData = (a, b) => a.id === b.id && a.data === b.data && a.width === b.width && a.height === b.height;
export const StepNode = memo(StepNodeView, sameData);
export const DataNode = memo(DataNodeView, sameData);
