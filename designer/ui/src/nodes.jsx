// Canvas nodes: a step with one handle per input and output port, and a DataReference source.
import React, { useEffect, useRef } from "react";
import { Handle, Position, useUpdateNodeInternals } from "@xyflow/react";
import { NEW_INPUT, inputsOf, outputsOf } from "./model.js";

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

export function StepNode({ id, data }) {
  const { step, module, problems, selected } = data;
  const updateNodeInternals = useUpdateNodeInternals();
  let inputs = inputsOf(step);
  if (step.kind === "ModuleStep" && module)
    inputs = module.inputs.map((p) => ({ port: p.name, data: step.inputs_map[p.name] || "" }));
  else if (step.kind !== "ModuleStep" && step.editable) inputs = [...inputs, { port: NEW_INPUT, data: "" }];
  let outputs = outputsOf(step);
  if (step.kind === "ModuleStep" && module)
    outputs = module.outputs.map((p) => ({ port: p.name, data: step.outputs_map[p.name] || "" }));
  // React Flow measures handles with the node; ports added later must be measured again
  const signature = `${inputs.map((p) => p.port).join("|")}#${outputs.map((p) => p.port).join("|")}`;
  // (not on mount: React Flow measures a new node itself, and 200 extra updates cost seconds)
  const measuredSignature = useRef(signature);
  useEffect(() => {
    if (measuredSignature.current === signature) return;
    measuredSignature.current = signature;
    updateNodeInternals(id);
  }, [id, signature, updateNodeInternals]);
  const cls = ["step", problems.length ? "has-problem" : "", step.editable ? "" : "readonly", selected ? "selected" : ""];
  return (
    <div className={cls.join(" ")} data-testid={`step-${step.id}`} title={problems.map((p) => p.message).join("\n")}>
      {ports(inputs, "target", Position.Left)}
      <div className="kind">{step.kind}{step.compute_target ? ` · ${step.compute_target}` : ""}</div>
      <div className="name">{step.name}</div>
      <div className="detail">{step.script_name || step.module || step.reason || ""}</div>
      {!step.allow_reuse && <div className="detail">allow_reuse=False</div>}
      <div className="portnames">
        <span>{inputs.filter((p) => p.port !== NEW_INPUT).map((p) => p.port).join(", ")}</span>
        <span>→ {outputs.map((p) => p.port).join(", ")}</span>
      </div>
      {ports(outputs, "source", Position.Right)}
    </div>
  );
}

export function DataNode({ data }) {
  const { ref } = data;
  return (
    <div className="dataref" data-testid={`data-${ref.name}`}>
      <div className="kind">DataReference · {ref.datastore}</div>
      <div className="name">{ref.name}</div>
      <div className="detail">{ref.path_on_datastore}</div>
      <Handle id={ref.name} type="source" position={Position.Right} data-testid={`source-${ref.name}`} />
    </div>
  );
}
