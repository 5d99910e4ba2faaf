// The followed run's state (a link to it in Airflow) and the recent runs of the open pipeline
// (Airflow's DAG runs of its DAG id), to follow one of them.
import React, { useState } from "react";
import { api } from "./api.js";

export function RunsMenu({ query, run, setRun, setStatus }) {
  const [open, setOpen] = useState(false);
  const [list, setList] = useState(null);

  const show = async () => {
    if (open) return setOpen(false);
    setOpen(true);
    setList(null);
    try {
      setList((await api.runs(query)).runs);
    } catch (e) {
      setList([]);
      setStatus(`runs: ${e.message}`);
    }
    return undefined;
  };

  const pick = (r) => {
    setRun({ dag_id: r.dag_id, run_id: r.run_id, url: r.url, state: r.state, steps: {} });
    setStatus(`following run ${r.run_id}`);
    setOpen(false);
  };

  return (
    <>
      {run && (
        <a href={run.url} target="_blank" rel="noreferrer" data-testid="run-state" data-state={run.followed ? run.state : "loading"}>
          {run.followed ? run.state : "…"}
        </a>
      )}
      {query && <button onClick={show} data-testid="recent-runs" title="recent runs of this pipeline">Runs ▾</button>}
      {open && (
        <div className="runpanel" data-testid="runs-panel">
          <h4>Recent runs</h4>
          {list === null && <p>loading…</p>}
          {list && list.length === 0 && <p>no runs yet</p>}
          {list && list.map((r) => (
            <div key={r.run_id} className="row">
              <button onClick={() => pick(r)} data-testid="pick-run" data-run={r.run_id}>{r.run_id}</button>
              <small className={`runstate state-${r.state}`}>{r.state} {r.start_date ? r.start_date.slice(0, 19).replace("T", " ") : ""}</small>
            </div>
          ))}
        </div>
      )}
    </>
  );
}
