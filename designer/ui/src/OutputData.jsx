// The PipelineData a step writes, each with the datastore it lands on (v1's
// PipelineData(name, datastore=...)); "default" leaves the datastore out of the file, so the
// workspace's default datastore is used when it runs.
import React from "react";

export function OutputData({ graph, names, palette, disabled, change }) {
  if (!names.length) return <div>none</div>;
  return (
    <div data-testid="output-data">
      {names.map((name) => {
        const data = graph.pipeline_data.find((d) => d.name === name);
        if (!data) return <div key={name}><code>{name}</code></div>;
        return (
          <div key={name} className="row">
            <code>{name}</code>
            <select disabled={disabled} data-testid={`output-datastore-${name}`} value={data.datastore ?? ""}
              onChange={(e) => change((g) => (g.pipeline_data.find((d) => d.name === name).datastore = e.target.value || null))}>
              <option value="">default datastore</option>
              {palette.datastores.map((d) => <option key={d.name} value={d.name}>{d.name}</option>)}
            </select>
          </div>
        );
      })}
    </div>
  );
}
