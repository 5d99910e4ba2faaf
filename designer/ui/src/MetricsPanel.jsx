// The Metrics panel: what the selected step of the followed run logged (run.log_*), from
// GET /api/run/metrics: scalars, lines for series, lists and numeric tables (Evaluate Model's
// ROC curve), tables, a heatmap for a confusion matrix, images inline. It loads again when the
// step's state changes, so a step that finishes while selected shows its metrics.
import React, { useEffect, useState } from "react";
import { api } from "./api.js";
import { Heatmap, LineChart } from "./charts.jsx";
import "./metrics.css";

function Value({ v }) {
  return typeof v === "number" ? Number(v.toPrecision(6)) : typeof v === "string" ? v : JSON.stringify(v);
}

function Table({ columns, rows, total }) {
  return (
    <>
      <table className="metric-table" data-testid="metric-table">
        <thead><tr>{columns.map((c) => <th key={c}>{c}</th>)}</tr></thead>
        <tbody>
          {rows.map((row, i) => (
            <tr key={i}>{row.map((cell, j) => <td key={j}><Value v={cell} /></td>)}</tr>
          ))}
        </tbody>
      </table>
      {total > rows.length && <small>{total - rows.length} more rows not shown</small>}
    </>
  );
}

function Entry({ entry }) {
  let body;
  if (entry.kind === "line") {
    body = (
      <>
        <LineChart entry={entry} />
        {entry.points_logged && <small>{entry.points_logged} points logged, {entry.series[0].x.length} drawn</small>}
        {entry.table && (
          <details>
            <summary>table</summary>
            <Table columns={entry.table.columns} rows={entry.table.rows} total={entry.table.total_rows} />
          </details>
        )}
      </>
    );
  } else if (entry.kind === "table") {
    body = <Table columns={entry.columns} rows={entry.rows} total={entry.total_rows} />;
  } else if (entry.kind === "confusion_matrix") {
    body = <Heatmap entry={entry} />;
  } else if (entry.kind === "image") {
    body = <img src={entry.url} alt={entry.name} className="metric-image" data-testid="metric-image" />;
  } else {
    body = (
      <>
        {entry.note && <small className="reason">{entry.note}</small>}
        <pre className="metric-json">{JSON.stringify(entry.value, null, 2)}</pre>
      </>
    );
  }
  return (
    <section className="metric" data-testid={`metric-${entry.name}`} data-kind={entry.kind}>
      <h5>{entry.name} <small>{entry.source || ""}</small></h5>
      {entry.description && <small>{entry.description}</small>}
      {body}
    </section>
  );
}

export function MetricsPanel({ path, run, stepName, close }) {
  const step = run?.steps?.[stepName];
  const [answer, setAnswer] = useState(null);
  const [error, setError] = useState(null);
  const key = step ? `${run.dag_id}/${run.run_id}/${step.task_id}/${step.state}` : null;
  useEffect(() => {
    if (!step) return undefined;
    let stopped = false;
    setError(null);
    api
      .runMetrics(path, run.dag_id, run.run_id, step.task_id)
      .then((a) => !stopped && setAnswer(a))
      .catch((e) => !stopped && setError(e.message));
    return () => { stopped = true; };
  }, [key]); // eslint-disable-line react-hooks/exhaustive-deps
  if (!step) return null;
  const entries = answer?.task_id === step.task_id ? answer.metrics : null;
  const scalars = (entries || []).filter((e) => e.kind === "scalar");
  const charts = (entries || []).filter((e) => e.kind !== "scalar");
  return (
    <div className="metricspanel" data-testid="metrics-panel">
      <div className="row">
        <h4>Metrics · {stepName}</h4>
        <small>{step.state}{answer?.reused ? ` · from run ${step.reused?.pipeline_run_id ?? answer.step_run_id}` : ""}</small>
        <button onClick={close} title="close" data-testid="metrics-close">×</button>
      </div>
      {error && <p className="reason">{error}</p>}
      {!entries && !error && <p>loading…</p>}
      {entries && entries.length === 0 && <p>no metrics logged{step.state === "running" ? " yet" : ""}</p>}
      {scalars.length > 0 && (
        <table className="metric-table" data-testid="metric-scalars">
          <tbody>
            {scalars.map((e) => (
              <tr key={e.name} title={e.description || ""}><td>{e.name}</td><td><Value v={e.value} /></td></tr>
            ))}
          </tbody>
        </table>
      )}
      {charts.map((e) => <Entry key={e.name} entry={e} />)}
    </div>
  );
}
