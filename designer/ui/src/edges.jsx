// The canvas's data edge: React Flow's bezier path with the data's name as plain SVG text.
// React Flow's own label (EdgeText) measures itself with getBBox after mounting and renders
// again with the box it found: on a 200-step pipeline that is 392 forced layouts and a second
// render of every edge while the page opens. A stroke painted under the text gives the same
// white halo with nothing to measure.
import React, { memo, useContext } from "react";
import { BaseEdge, getBezierPath } from "@xyflow/react";
import { mark } from "./perf.js";
import { CompactContext } from "./compact.jsx";

export const DataEdge = memo(function DataEdge({
  id, sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition, label, markerEnd, style,
}) {
  mark("open:edges"); // React Flow draws an edge once it knows where both ends are
  const compact = useContext(CompactContext); // zoomed far out, labels would be specks
  const [path, labelX, labelY] = getBezierPath({ sourceX, sourceY, targetX, targetY, sourcePosition, targetPosition });
  return (
    <>
      <BaseEdge id={id} path={path} markerEnd={markerEnd} style={style} />
      {label && !compact && (
        <text x={labelX} y={labelY} className="data-edge-label" textAnchor="middle" dominantBaseline="central"
          fontSize={10} fill="#52606d" stroke="white" strokeWidth={3} paintOrder="stroke" pointerEvents="none">
          {label}
        </text>
      )}
    </>
  );
});
