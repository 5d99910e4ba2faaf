// The designer's backend (mlpipe_provider/designer/app.py), relative to this page.
const BASE = "./api";

async function call(method, path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = data.detail;
    const message =
      typeof detail === "string" ? detail : detail?.message || JSON.stringify(detail);
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    error.problems = detail?.problems || [];
    throw error;
  }
  return data;
}

export const api = {
  me: () => call("GET", "/me"),
  files: () => call("GET", "/files"),
  open: (path) => call("GET", `/pipeline?path=${encodeURIComponent(path)}`),
  palette: (path) => call("GET", `/palette?path=${encodeURIComponent(path)}`),
  validate: (path, graph) => call("POST", "/validate", { path, graph }),
  save: (body) => call("POST", "/save", body),
  runParameters: (path) => call("GET", `/run/parameters?path=${encodeURIComponent(path)}`),
  run: (body) => call("POST", "/run", body),
  runState: (dagId, runId) =>
    call("GET", `/run?dag_id=${encodeURIComponent(dagId)}&run_id=${encodeURIComponent(runId)}`),
  publish: (body) => call("POST", "/publish", body),
  runMetrics: (path, dagId, runId, taskId) =>
    call("GET", `/run/metrics?${new URLSearchParams({ path, dag_id: dagId, run_id: runId, task_id: taskId })}`),
  runs: (query) => call("GET", `/runs?${new URLSearchParams(query)}`),
  drafts: (path) => call("GET", `/drafts${path ? `?path=${encodeURIComponent(path)}` : ""}`),
  openDraft: (id, path) =>
    call("GET", `/draft?id=${encodeURIComponent(id)}${path ? `&path=${encodeURIComponent(path)}` : ""}`),
  saveDraft: (body) => call("POST", "/draft", body),
  runDraft: (body) => call("POST", "/draft/run", body),
  publishDraft: (body) => call("POST", "/draft/publish", body),
};
