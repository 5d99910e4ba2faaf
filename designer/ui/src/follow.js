// Following a run: its state polled until it ends (every node shows its step's state), and the
// page URL, which names the open file, draft and followed run, so a reload follows it again.
import { useEffect } from "react";
import { api } from "./api.js";

const POLL_MS = 1500;
export const ENDED = new Set(["success", "failed"]);

export function readUrl() {
  const q = new URLSearchParams(window.location.search);
  const run = q.get("run");
  const cut = run ? run.indexOf("/") : -1;
  return {
    path: q.get("path") || "",
    draft: q.get("draft"),
    run: cut > 0 ? { dag_id: run.slice(0, cut), run_id: run.slice(cut + 1) } : null,
  };
}

export function writeUrl({ path, draft, run }) {
  const q = new URLSearchParams();
  if (path) q.set("path", path);
  if (draft) q.set("draft", draft);
  if (run) q.set("run", `${run.dag_id}/${run.run_id}`);
  const next = `${window.location.pathname}?${q}`;
  if (next !== `${window.location.pathname}${window.location.search}`) window.history.replaceState(null, "", next);
}

// Fetch the run's state at once (a run picked from the list, or named by the URL, shows its
// final states too), then every POLL_MS until it ends; an unknown run stops it.
export function useFollowRun(run, setRun, setStatus) {
  const key = run ? `${run.dag_id}/${run.run_id}` : null;
  useEffect(() => {
    if (!run) return undefined;
    let stopped = false;
    let timer = null;
    const tick = async () => {
      try {
        const state = await api.runState(run.dag_id, run.run_id);
        if (stopped) return;
        setRun((r) => (r && r.run_id === state.run_id && r.dag_id === state.dag_id ? { ...r, ...state, followed: true } : r));
        if (ENDED.has(state.state)) return setStatus(`run ${state.run_id} ${state.state}`);
      } catch (e) {
        setStatus(`run state: ${e.message}`);
        if (e.status === 404 || e.status === 403) return undefined;
      }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
      return undefined;
    };
    timer = setTimeout(tick, run.followed ? POLL_MS : 0);
    return () => { stopped = true; clearTimeout(timer); };
  }, [key]); // eslint-disable-line react-hooks/exhaustive-deps
}
