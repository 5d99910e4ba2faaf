// Run the saved pipeline: a form of its PipelineParameters (typed from their defaults), then the
// run's state polled until it ends; each node shows its step's state (App passes run.steps on).
import React, { useEffect, useState } from "react";
import { api } from "./api.js";

const POLL_MS = 1500;
const ENDED = new Set(["success", "failed"]);

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

export function RunPanel({ path, variable, run, setRun, setStatus, canEdit }) {
  const [open, setOpen] = useState(false);
  const [specs, setSpecs] = useState(null);
  const [values, setValues] = useState({});
  const [busy, setBusy] = useState(false);
  const [publishName, setPublishName] = useState("");

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
      const started = await api.run({ path, variable, parameters: changed });
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

  // poll the run until it ends
  const runKey = run ? `${run.dag_id}/${run.run_id}` : null;
  useEffect(() => {
    if (!run || ENDED.has(run.state)) return undefined;
    let stopped = false;
    const timer = setInterval(async () => {
      try {
        const state = await api.runState(run.dag_id, run.run_id);
        if (stopped) return;
        setRun((r) => (r && r.run_id === state.run_id ? { ...r, ...state } : r));
        if (ENDED.has(state.state)) setStatus(`run ${state.run_id} ${state.state}`);
      } catch (e) {
        setStatus(`run state: ${e.message}`);
      }
    }, POLL_MS);
    return () => { stopped = true; clearInterval(timer); };
  }, [runKey, run && ENDED.has(run.state)]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <>
      <button onClick={show} data-testid="run" disabled={busy}>Run…</button>
      {run && (
        <a href={run.url} target="_blank" rel="noreferrer" data-testid="run-state" data-state={run.state}>
          {run.state}
        </a>
      )}
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
