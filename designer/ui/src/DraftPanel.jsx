// Drafts (v1 PipelineDraft): save the canvas as a draft (name, experiment, parameter values,
// continue_on_step_failure), list and open the workspace's drafts, run and publish the open one.
// A draft is the SDK's own record: PipelineDraft.get/list in Python see what is saved here.
import React, { useEffect, useState } from "react";
import { api } from "./api.js";

function valueOf(text, template) {
  if (typeof template === "number") return text === "" ? "" : Number(text);
  return text;
}

export function DraftPanel({ path, graph, positions, draft, showDraft, setDraft, me, setRun, setStatus }) {
  const [open, setOpen] = useState(false);
  const [list, setList] = useState(null);
  const [busy, setBusy] = useState(false);
  const [form, setForm] = useState({ name: "", experiment_name: "", continue_on_step_failure: false, values: {} });
  const clean = Boolean(draft && graph === draft.graph); // the canvas is what the draft holds

  useEffect(() => {
    if (!open) return;
    setForm({
      name: draft?.name || graph?.variable || "",
      experiment_name: draft?.experiment_name || "",
      continue_on_step_failure: Boolean(draft?.continue_on_step_failure),
      values: { ...(draft?.pipeline_parameters || {}) },
    });
    setList(null);
    api.drafts(path).then((d) => setList(d.drafts)).catch((e) => { setList([]); setStatus(`drafts: ${e.message}`); });
  }, [open]); // eslint-disable-line react-hooks/exhaustive-deps

  const act = async (what, fn) => {
    setBusy(true);
    try {
      await fn();
    } catch (e) {
      setStatus(`${what} failed: ${e.message}`);
    } finally {
      setBusy(false);
    }
  };

  const save = () => act("save draft", async () => {
    const sameDraft = draft?.editable && draft.name === form.name;
    const saved = await api.saveDraft({
      path, graph, layout: { nodes: positions }, name: form.name,
      experiment_name: form.experiment_name || null,
      pipeline_parameters: form.values,
      continue_on_step_failure: form.continue_on_step_failure,
      id: sameDraft ? draft.id : null,
    });
    setDraft({ ...saved, graph });
    setStatus(`saved draft ${saved.name} (${saved.id})`);
    setOpen(false);
  });

  const openOne = (d) => act("open draft", async () => {
    showDraft(await api.openDraft(d.id, path));
    setStatus(`opened draft ${d.name}${d.editable ? "" : " (read only: made in Python)"}`);
    setOpen(false);
  });

  const run = () => act("run draft", async () => {
    const started = await api.runDraft({ path, id: draft.id });
    setRun({ ...started, state: "queued", steps: {} });
    setStatus(`draft run ${started.run_id} queued`);
    setOpen(false);
  });

  const publish = () => act("publish draft", async () => {
    const done = await api.publishDraft({ path, id: draft.id });
    setStatus(`published draft ${done.name} (id ${done.id})`);
    setOpen(false);
  });

  const params = graph?.parameters || [];
  return (
    <>
      <button onClick={() => setOpen(!open)} data-testid="drafts">Drafts…</button>
      {draft && <span className="badge draft" data-testid="open-draft">draft {draft.name}{clean ? "" : " (edited)"}</span>}
      {open && (
        <div className="runpanel" data-testid="drafts-panel">
          {me?.can_edit && graph && (
            <>
              <h4>Save as draft</h4>
              <label className="field"><span>name</span>
                <input value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} data-testid="draft-name" />
              </label>
              <label className="field"><span>experiment (default: the name)</span>
                <input value={form.experiment_name} onChange={(e) => setForm({ ...form, experiment_name: e.target.value })} data-testid="draft-experiment" />
              </label>
              {params.map((p) => (
                <label key={p.name} className="field"><span>{p.name} <small>(default {JSON.stringify(p.default)})</small></span>
                  {typeof p.default === "boolean" ? (
                    <input type="checkbox" checked={Boolean(form.values[p.name] ?? p.default)} data-testid={`draft-param-${p.name}`}
                      onChange={(e) => setForm({ ...form, values: { ...form.values, [p.name]: e.target.checked } })} />
                  ) : (
                    <input value={form.values[p.name] ?? ""} placeholder={String(p.default)} data-testid={`draft-param-${p.name}`}
                      onChange={(e) => {
                        const values = { ...form.values, [p.name]: valueOf(e.target.value, p.default) };
                        if (e.target.value === "") delete values[p.name];
                        setForm({ ...form, values });
                      }} />
                  )}
                </label>
              ))}
              <label className="field"><span>
                <input type="checkbox" checked={form.continue_on_step_failure} data-testid="draft-continue"
                  onChange={(e) => setForm({ ...form, continue_on_step_failure: e.target.checked })} /> continue_on_step_failure</span>
              </label>
              <button onClick={save} disabled={busy || !form.name} data-testid="draft-save">
                {draft?.editable && draft.name === form.name ? "Update draft" : "Save draft"}
              </button>
            </>
          )}
          {draft && clean && (me?.can_run || me?.can_edit) && (
            <>
              <h4>Draft {draft.name}</h4>
              <div className="row">
                {me?.can_run && <button onClick={run} disabled={busy} data-testid="draft-run">Run draft</button>}
                {me?.can_edit && <button onClick={publish} disabled={busy} data-testid="draft-publish">Publish draft</button>}
              </div>
            </>
          )}
          <h4>Open draft</h4>
          {list === null && <p>loading…</p>}
          {list && list.length === 0 && <p>no drafts in this workspace</p>}
          {list && list.map((d) => (
            <div key={d.id} className="row">
              <button onClick={() => openOne(d)} disabled={busy} data-testid="draft-open" data-name={d.name}>{d.name}</button>
              <small>{d.experiment_name} · {d.step_names.length} steps{d.editable ? "" : " · read only"}</small>
            </div>
          ))}
        </div>
      )}
    </>
  );
}
