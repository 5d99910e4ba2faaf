// Side-form pieces: a step's environment variables (its RunConfiguration) and a
// DataReference's name. The writer renders every value as a literal (compiler/literals.py).
import React, { useState } from "react";

// Rename a DataReference everywhere it is used: the steps' inputs, arguments and module ports.
export function renameData(g, old, name) {
  const ref = [...g.data_references, ...(g.datasets ?? [])].find((d) => d.name === old);
  if (!ref) return;
  ref.name = name;
  for (const s of g.steps) {
    s.inputs = s.inputs.map((i) => (i === old ? name : i));
    s.arguments = s.arguments.map((a) => (a && typeof a === "object" && a.data === old ? { ...a, data: name } : a));
    for (const [port, data] of Object.entries(s.inputs_map)) if (data === old) s.inputs_map[port] = name;
  }
}

export function EnvVars({ vars, disabled, set }) {
  const [name, setName] = useState("");
  const [value, setValue] = useState("");
  const entries = Object.entries(vars || {});
  return (
    <div className="field" data-testid="env-vars">
      <span>environment variables (RunConfiguration)</span>
      {entries.length === 0 && <div>none</div>}
      {entries.map(([k, v]) => (
        <div key={k} className="row">
          <code>{k}</code>
          <input disabled={disabled} value={v} data-testid={`env-${k}`} onChange={(e) => set({ ...vars, [k]: e.target.value })} />
          {!disabled && (
            <button data-testid={`env-remove-${k}`} onClick={() => { const next = { ...vars }; delete next[k]; set(next); }}>×</button>
          )}
        </div>
      ))}
      {!disabled && (
        <div className="row">
          <input placeholder="NAME" value={name} onChange={(e) => setName(e.target.value)} data-testid="env-new-name" />
          <input placeholder="value" value={value} onChange={(e) => setValue(e.target.value)} data-testid="env-new-value" />
          <button data-testid="env-add" disabled={!name.trim()} onClick={() => {
            set({ ...vars, [name.trim()]: value });
            setName(""); setValue("");
          }}>Add</button>
        </div>
      )}
    </div>
  );
}

// A DataReference's name, applied when the field is left (a name half typed is not a rename).
export function DataName({ name, disabled, taken, rename }) {
  const [text, setText] = useState(name);
  const [shown, setShown] = useState(name);
  if (shown !== name) { setShown(name); setText(name); }
  const clash = text !== name && taken.has(text);
  const apply = () => { if (text && text !== name && !clash) rename(text); else setText(name); };
  return (
    <label className={clash ? "field has-problem" : "field"}>
      <span>data_reference_name</span>
      <input disabled={disabled} value={text} data-testid="field-data_reference_name"
        onChange={(e) => setText(e.target.value)} onBlur={apply} onKeyDown={(e) => e.key === "Enter" && apply()} />
      {clash && <em>{text} is already a data name</em>}
    </label>
  );
}
