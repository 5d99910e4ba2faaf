// Run the saved pipeline: a form of its PipelineParameters (typed from their defaults) and v1's
// submit options (follow.js then follows the run; each node shows its step's state); publish.
import React, { useState } from "react";
import { api } from "./api.js";

function ParamInput({ name, spec, value, set }) {
  const id = `run-param-${name}`;
  if (spec.type === "boolean")
    return <input type="checkbox" data-testid={id} checked={Boolean(value)} onChange={(e) => set(e.target.checked)} />;
  if (spec.type === "integer" || spec.type === "number")
    return (
      <input type="number" data-testid={id} step={spec.type === "integer" ? 1 : "any"} value={value}
        onChange={(e) => set(e.target.value === "" ? "" : Number(e.target.value))} />
    );
  if (spec.type === "string")
    return <input data-testid={id} value={value} onChange={(e) => set(e.target.value)} />;
  // DataPath and dataset parameters: their JSON, as the REST body would carry them
  return <input data-testid={id} value={JSON.stringify(value)} onChange={(e) => { try { set(JSON.parse(e.target.value)); } catch { /* keep typing */ } }} />;
}

export function RunPanel({ path, variable, setRun, setStatus, canEdit }) {
  const [open, setOpen] = useState(false);
  const [specs, setSpecs] = useState(null);
  const [values, setValues] = useState({});
  const [busy, setBusy] = useState(false);
  const [publishName, setPublishName] = useState("");
  const [options, setOptions] = useState({ regenerate_outputs: false, continue_on_step_failure: false });

  const show = async () => {
    if (open) return setOpen(false);
    setOpen(true);
    setSpecs(null); // the file may have changed since: read its parameters again
    try {
      const { parameters } = await api.runParameters(path);
      setSpecs(parameters);
      setValues(Object.fromEntries(Object.entries(parameters).map(([k, p]) => [k, p.default])));
    } catch (e) {
      setSpecs({});
      setStatus(`cannot run: ${e.message}`);
    }
  };

  const start = async () => {
    setBusy(true);
    setStatus("compiling and starting the run");
    const changed = Object.fromEntries(
      Object.entries(values).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(specs[k].default)),
    );
    try {
      const started = await api.run({ path, variable, parameters: changed, ...options });
      setRun({ ...started, state: "queued", steps: {} });
      setStatus(`run ${started.run_id} queued`);
      setOpen(false);
    } catch (e) {
      setStatus(`run failed to start: ${e.message}`);
    } finally {
      setBusy(false);
    }
  };

  const publish = async () => {
    setBusy(true);
    try {
      const done = await api.publish({ path, variable, name: publishName || variable, endpoint: publishName || variable });
      setStatus(`published ${done.name} (id ${done.id}, endpoint ${done.endpoint})`);
      setOpen(false);
    } catch (e) {
      setStatus(`publish failed: ${e.message}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      <button onClick={show} data-testid="run" disabled={busy}>Run…</button>
      {open && (
        <div className="runpanel" data-testid="run-panel">
          <h4>Run {variable}</h4>
          {specs === null && <p>loading parameters…</p>}
          {specs && Object.keys(specs).length === 0 && <p>no PipelineParameters</p>}
          {specs && Object.entries(specs).map(([name, spec]) => (
            <label key={name} className="field">
              <span>{name} <small>({spec.type}, default {JSON.stringify(spec.default)})</small></span>
              <ParamInput name={name} spec={spec} value={values[name]} set={(v) => setValues((o) => ({ ...o, [name]: v }))} />
            </label>
          ))}
          <label className="field" title="run every step, even where a reusable result exists">
            <span><input type="checkbox" checked={options.regenerate_outputs} data-testid="run-regenerate"
              onChange={(e) => setOptions((o) => ({ ...o, regenerate_outputs: e.target.checked }))} /> regenerate_outputs</span>
          </label>
          <label className="field" title="keep running the steps that do not depend on a failed one">
            <span><input type="checkbox" checked={options.continue_on_step_failure} data-testid="run-continue"
              onChange={(e) => setOptions((o) => ({ ...o, continue_on_step_failure: e.target.checked }))} /> continue_on_step_failure</span>
          </label>
          <button onClick={start} disabled={busy || specs === null} data-testid="run-start">Start run</button>
          {canEdit && (
            <>
              <h4>Publish</h4>
              <div className="row">
                <input placeholder={`name (${variable})`} value={publishName} onChange={(e) => setPublishName(e.target.value)} data-testid="publish-name" />
                <button onClick={publish} disabled={busy} data-testid="publish">Publish</button>
              </div>
              <small>a PublishedPipeline, added to the PipelineEndpoint of the same name</small>
            </>
          )}
        </div>
      )}
    </>
  );
}
