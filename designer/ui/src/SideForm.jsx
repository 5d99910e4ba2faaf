// The side form: the selected step's fields (or the pipeline's), each marked with its problems.
import React, { useState } from "react";
import { identifier, uniqueName } from "./model.js";
import { DataName, EnvVars, renameData } from "./EnvForm.jsx";

function Problems({ list }) {
  if (!list.length) return null;
  return <ul className="problems" data-testid="problems">{list.map((p, i) => <li key={i}>{p.message}</li>)}</ul>;
}

function Field({ label, problems, children }) {
  return (
    <label className={problems.length ? "field has-problem" : "field"}>
      <span>{label}</span>
      {children}
      {problems.map((p, i) => <em key={i}>{p.message}</em>)}
    </label>
  );
}

function typed(value, example) {
  if (typeof example === "number") return Number(value);
  if (typeof example === "boolean") return value === true || value === "true";
  return value;
}

function argText(a) {
  if (a && typeof a === "object") return a.parameter ? `@${a.parameter}` : `<${a.data}>`;
  return JSON.stringify(a);
}

// One module parameter, typed by its spec (the module version's interface): a choice of the
// allowed values, a checkbox, a number within its range, JSON or text; "→ PipelineParameter"
// promotes it (a new PipelineParameter with the current value as default, referenced here).
function ModuleParam({ name, spec, value, problems, disabled, set, promote }) {
  const id = `param-${name}`;
  const isRef = value && typeof value === "object";
  const type = spec?.type || (typeof value === "boolean" ? "bool" : typeof value === "number" ? "float" : "str");
  let input;
  if (isRef) {
    input = (
      <div className="row">
        <input disabled data-testid={id} value={`@${value.parameter}`} />
        {!disabled && <button onClick={() => set(spec ? spec.default : "")} data-testid={`unpromote-${name}`}>literal</button>}
      </div>
    );
  } else if (spec?.allowed) {
    input = (
      <select disabled={disabled} data-testid={id} value={String(value ?? "")} onChange={(e) => set(e.target.value)}>
        {spec.allowed.map((a) => <option key={a} value={a}>{a}</option>)}
      </select>
    );
  } else if (type === "bool") {
    input = <input type="checkbox" disabled={disabled} data-testid={id} checked={Boolean(value)} onChange={(e) => set(e.target.checked)} />;
  } else if (type === "int" || type === "float") {
    input = (
      <input type="number" disabled={disabled} data-testid={id} value={value ?? ""} min={spec?.min} max={spec?.max}
        step={type === "int" ? 1 : "any"} onChange={(e) => set(e.target.value === "" ? "" : Number(e.target.value))} />
    );
  } else if (type === "json" || spec?.multiline) {
    input = <textarea disabled={disabled} data-testid={id} value={String(value ?? "")} onChange={(e) => set(e.target.value)} />;
  } else {
    input = (
      <input disabled={disabled} data-testid={id} value={String(value ?? "")}
        onChange={(e) => set(e.target.value.startsWith("@") ? { data: null, parameter: e.target.value.slice(1) } : e.target.value)} />
    );
  }
  const range = spec && (spec.min !== undefined || spec.max !== undefined) ? ` ${spec.min ?? ""}..${spec.max ?? ""}` : "";
  const label = `${name} (${type}${range}${spec?.required ? ", required" : ""})`;
  return (
    <Field label={label} problems={problems}>
      <span title={spec?.label || ""}>{input}</span>
      {!disabled && !isRef && (
        <button className="promote" onClick={promote} data-testid={`promote-${name}`}>→ PipelineParameter</button>
      )}
    </Field>
  );
}

export function SideForm({ graph, selected, change, palette, problems, readOnly, renamed }) {
  const [flag, setFlag] = useState("");
  const [value, setValue] = useState("");
  const [output, setOutput] = useState("");
  const [param, setParam] = useState("");
  if (!graph) return <aside className="form" />;
  const dis = readOnly;
  const ref = selected?.startsWith("data:") ? graph.data_references.find((d) => `data:${d.name}` === selected) : null;
  const step = graph.steps.find((s) => s.id === selected);
  const dataset = selected?.startsWith("data:") ? (graph.datasets ?? []).find((d) => `data:${d.name}` === selected) : null;

  if (dataset) {
    const edit = (fn) => change((g) => fn(g.datasets.find((d) => d.name === dataset.name)));
    const listed = (palette.datasets ?? []).find((d) => d.name === dataset.dataset);
    const mine = problems.filter((p) => p.step === dataset.name || p.message?.includes(`'${dataset.dataset}'`));
    return (
      <aside className="form" data-testid="form">
        <h3>Dataset {dataset.name}</h3>
        <DataName name={dataset.name} disabled={dis}
          taken={new Set([...graph.data_references, ...graph.datasets, ...graph.pipeline_data].map((d) => d.name))}
          rename={(name) => { change((g) => renameData(g, dataset.name, name)); renamed?.(`data:${dataset.name}`, `data:${name}`); }} />
        <Field label="dataset" problems={mine}>
          <select disabled={dis} data-testid="field-dataset" value={dataset.dataset}
            onChange={(e) => edit((d) => { d.dataset = e.target.value; d.version = null; })}>
            {!listed && <option>{dataset.dataset}</option>}
            {(palette.datasets ?? []).map((d) => <option key={d.name}>{d.name}</option>)}
          </select>
        </Field>
        <Field label="version" problems={[]}>
          <select disabled={dis} data-testid="field-dataset-version" value={dataset.version ?? ""}
            onChange={(e) => edit((d) => (d.version = e.target.value ? Number(e.target.value) : null))}>
            <option value="">latest when it runs</option>
            {(listed?.versions ?? (dataset.version ? [dataset.version] : [])).map((v) => <option key={v} value={v}>{v}</option>)}
          </select>
        </Field>
        <Field label="mode" problems={[]}>
          <select disabled={dis} data-testid="field-dataset-mode" value={dataset.mode}
            onChange={(e) => edit((d) => { d.mode = e.target.value; if (d.mode === "direct") d.path_on_compute = null; })}>
            <option value="direct">direct (as_named_input)</option>
            {listed?.type !== "tabular" && <option value="mount">mount (as_mount)</option>}
            {listed?.type !== "tabular" && <option value="download">download (as_download)</option>}
          </select>
        </Field>
        {dataset.mode !== "direct" && (
          <Field label="path_on_compute" problems={[]}>
            <input disabled={dis} data-testid="field-path_on_compute" value={dataset.path_on_compute || ""}
              onChange={(e) => edit((d) => (d.path_on_compute = e.target.value || null))} />
          </Field>
        )}
      </aside>
    );
  }

  if (ref) {
    const edit = (fn) => change((g) => fn(g.data_references.find((d) => d.name === ref.name)));
    return (
      <aside className="form" data-testid="form">
        <h3>DataReference {ref.name}</h3>
        <DataName name={ref.name} disabled={dis}
          taken={new Set([...graph.data_references, ...(graph.datasets ?? []), ...graph.pipeline_data].map((d) => d.name))}
          rename={(name) => { change((g) => renameData(g, ref.name, name)); renamed?.(`data:${ref.name}`, `data:${name}`); }} />
        <Field label="datastore" problems={[]}>
          <select disabled={dis} value={ref.datastore} onChange={(e) => edit((d) => (d.datastore = e.target.value))}>
            {palette.datastores.map((d) => <option key={d.name}>{d.name}</option>)}
          </select>
        </Field>
        <Field label="path_on_datastore" problems={[]}>
          <input disabled={dis} data-testid="field-path_on_datastore" value={ref.path_on_datastore || ""}
            onChange={(e) => edit((d) => (d.path_on_datastore = e.target.value))} />
        </Field>
      </aside>
    );
  }

  if (!step) {
    const general = problems.filter((p) => !p.step || !graph.steps.some((s) => s.name === p.step));
    return (
      <aside className="form" data-testid="form">
        <h3>Pipeline {graph.variable}</h3>
        <Field label="description" problems={[]}>
          <textarea disabled={dis} value={graph.description || ""} onChange={(e) => change((g) => (g.description = e.target.value || null))} />
        </Field>
        <h4>PipelineParameters</h4>
        {graph.parameters.map((p, i) => (
          <Field key={p.name} label={p.name} problems={[]}>
            <input disabled={dis} data-testid={`param-${p.name}`} value={String(p.default)}
              onChange={(e) => change((g) => (g.parameters[i].default = typed(e.target.value, p.default)))} />
          </Field>
        ))}
        {!dis && (
          <div className="row">
            <input placeholder="name=default" value={param} onChange={(e) => setParam(e.target.value)} data-testid="new-param" />
            <button data-testid="add-param" onClick={() => {
              const [name, ...rest] = param.split("=");
              const text = rest.join("=");
              const number = Number(text);
              const def = text === "" ? "" : Number.isNaN(number) ? text : number;
              change((g) => g.parameters.push({ name: name.trim(), default: def }));
              setParam("");
            }}>Add</button>
          </div>
        )}
        <h4>Problems</h4>
        <Problems list={general} />
        <p className="count">{problems.length} problem(s) in the pipeline</p>
      </aside>
    );
  }

  const mine = problems.filter((p) => p.step === step.name);
  const of = (field) => mine.filter((p) => p.field === field || p.field?.startsWith(`${field}[`));
  const edit = (fn) => change((g) => fn(g.steps.find((s) => s.id === step.id)));
  const dis2 = dis || !step.editable;
  const gpuOf = (t) => (t.gpus ? ` (${t.gpus} GPU, pool ${t.pool})` : "");
  const module = palette.modules.find((m) => m.module === step.module);
  return (
    <aside className="form" data-testid="form">
      <h3>{step.kind} {step.name}</h3>
      {step.reason && <p className="reason">{step.reason}</p>}
      <Field label="name" problems={of("name")}>
        <input disabled={dis2} data-testid="field-name" value={step.name} onChange={(e) => edit((s) => (s.name = e.target.value))} />
      </Field>
      <Field label="compute_target" problems={of("compute_target")}>
        <select disabled={dis2} data-testid="field-compute_target" value={step.compute_target || ""}
          onChange={(e) => edit((s) => (s.compute_target = e.target.value || null))}>
          <option value="">(default)</option>
          {palette.compute_targets.map((t) => <option key={t.name} value={t.name}>{t.name}{gpuOf(t)}</option>)}
        </select>
      </Field>
      {step.kind === "PythonScriptStep" && (
        <>
          <Field label="allow_reuse" problems={of("allow_reuse")}>
            <input type="checkbox" disabled={dis2} data-testid="field-allow_reuse" checked={step.allow_reuse}
              onChange={(e) => edit((s) => (s.allow_reuse = e.target.checked))} />
          </Field>
          <Field label={`script_name (${step.source_directory || "."})`} problems={of("script_name")}>
            <input disabled value={step.script_name || ""} />
          </Field>
          <Field label="arguments" problems={of("arguments")}>
            <ol className="args" data-testid="arguments">
              {step.arguments.map((a, i) => (
                <li key={i}>{argText(a)} {!dis2 && <button onClick={() => edit((s) => s.arguments.splice(i, 1))}>×</button>}</li>
              ))}
            </ol>
          </Field>
          {!dis2 && (
            <div className="row">
              <input placeholder="--flag" value={flag} onChange={(e) => setFlag(e.target.value)} data-testid="arg-flag" />
              <input placeholder="value or @parameter" value={value} onChange={(e) => setValue(e.target.value)} data-testid="arg-value" />
              <button data-testid="add-arg" onClick={() => {
                edit((s) => {
                  if (flag) s.arguments.push(flag);
                  if (value.startsWith("@")) s.arguments.push({ data: null, parameter: value.slice(1) });
                  else if (value) s.arguments.push(value);
                });
                setFlag(""); setValue("");
              }}>Add</button>
            </div>
          )}
          <EnvVars vars={step.environment_variables} disabled={dis2}
            set={(vars) => edit((s) => (s.environment_variables = vars))} />
          <Field label="outputs (PipelineData)" problems={of("outputs")}>
            <div>{step.outputs.join(", ") || "none"}</div>
          </Field>
          {!dis2 && (
            <div className="row">
              <input placeholder="output name" value={output} onChange={(e) => setOutput(e.target.value)} data-testid="new-output" />
              <button data-testid="add-output" onClick={() => {
                const taken = new Set([...graph.pipeline_data.map((d) => d.name), ...graph.data_references.map((d) => d.name), ...(graph.datasets ?? []).map((d) => d.name)]);
                const name = uniqueName(taken, identifier(output || `${step.name}_out`));
                const store = palette.datastores.find((d) => d.default)?.name ?? null;
                change((g) => {
                  g.pipeline_data.push({ name, datastore: store });
                  const s = g.steps.find((x) => x.id === step.id);
                  s.outputs.push(name);
                  s.arguments.push(`--${name}`, { data: name, parameter: null });
                });
                setOutput("");
              }}>Add output</button>
            </div>
          )}
        </>
      )}
      {step.kind === "ModuleStep" && (
        <>
          <Field label={`module ${step.module}`} problems={of("module")}>
            <select disabled={dis2} value={step.version || ""} onChange={(e) => edit((s) => (s.version = e.target.value || null))}>
              <option value="">default version</option>
              {(module?.versions || []).map((v) => <option key={v} value={v}>{v}</option>)}
            </select>
          </Field>
          <h4>params</h4>
          {Object.entries({ ...(module?.param_specs || {}), ...Object.fromEntries(Object.keys(step.params).map((k) => [k, module?.param_specs?.[k] || null])) }).map(([k, spec]) => (
            <ModuleParam key={k} name={k} spec={spec} value={k in step.params ? step.params[k] : spec?.default}
              problems={of(`params[${JSON.stringify(k)}]`)} disabled={dis2}
              set={(v) => edit((s) => (s.params[k] = v))}
              promote={() => change((g) => {
                const taken = new Set(g.parameters.map((p) => p.name));
                const name = uniqueName(taken, identifier(`${step.name}_${k}`));
                const current = k in step.params ? step.params[k] : spec?.default;
                g.parameters.push({ name, default: current ?? "" });
                g.steps.find((x) => x.id === step.id).params[k] = { data: null, parameter: name };
              })} />
          ))}
        </>
      )}
      <Problems list={mine} />
    </aside>
  );
}
