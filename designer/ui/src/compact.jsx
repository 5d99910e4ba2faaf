// Zoomed far out (a big pipeline fitted into view), a node's text is a few pixels tall and its
// ports too small to grab: nodes then show only their name, in a bigger font, at the same size,
// and edges lose their labels. A 200-step pipeline opens at about 0.2; drawing the compact
// nodes needs half the elements and none of the handles' hooks, which is most of what the
// browser spends opening it. Edges still meet the nodes where the ports are (PortMarks), and
// are drawn as one SVG path (CompactEdges) instead of a React Flow edge each: nothing to click
// on at that size, and 392 edge components, with their hooks and elements, were the other half.
import React, { createContext, memo } from "react";
import { Position, getBezierPath, getViewportForBounds } from "@xyflow/react";
import { mark } from "./perf.js";

export const COMPACT_BELOW = 0.4; // zoom

export const CompactContext = createContext(false);

// The view fitView would choose (its rule: padding, zoom between min and max), known before
// anything is drawn, so the first render is already fitted and compact or not; null while the
// canvas has no size.
export function fitViewport(nodes, width, height, { minZoom, maxZoom, padding }) {
  if (!nodes.length || !width || !height) return null;
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const n of nodes) {
    x0 = Math.min(x0, n.position.x);
    y0 = Math.min(y0, n.position.y);
    x1 = Math.max(x1, n.position.x + n.measured.width);
    y1 = Math.max(y1, n.position.y + n.measured.height);
  }
  const bounds = { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  return getViewportForBounds(bounds, width, height, minZoom, maxZoom, padding);
}

// Where the ports are, for React Flow's measuring pass (it re-reads every port box from the page
// when it observes a node, and a node without them would lose its edges): hidden boxes where
// nodes.jsx's <Handle>s would be, without their hooks, and not connectable (no handle class).
function marks(ports, type, side) {
  return ports.map((p, i) => (
    <i key={`${type}:${p.port}`} className={type} data-handleid={p.port} data-handlepos={side}
      style={{ position: "absolute", [side]: -6, top: `calc(${((i + 1) * 100) / (ports.length + 1)}% - 6px)`,
        width: 12, height: 12, visibility: "hidden" }} />
  ));
}

export function PortMarks({ inputs, outputs }) {
  return (
    <>
      {marks(inputs, "target", "left")}
      {marks(outputs, "source", "right")}
    </>
  );
}

function portPoint(node, id, type) {
  const h = node.handles.find((p) => p.id === id && p.type === type);
  if (!h) return null;
  return { x: node.position.x + h.x + (type === "source" ? h.width : 0), y: node.position.y + h.y + h.height / 2 };
}

// Every edge as a segment of one path, in the viewport (a <ViewportPortal> child), below the
// nodes: the curve React Flow's own edges draw, from the port positions the nodes carry.
export const CompactEdges = memo(function CompactEdges({ nodes, edges }) {
  mark("open:edges");
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const parts = [];
  for (const e of edges) {
    const s = byId.get(e.source);
    const t = byId.get(e.target);
    const from = s && portPoint(s, e.sourceHandle, "source");
    const to = t && portPoint(t, e.targetHandle, "target");
    if (!from || !to) continue;
    parts.push(getBezierPath({ sourceX: from.x, sourceY: from.y, sourcePosition: Position.Right,
      targetX: to.x, targetY: to.y, targetPosition: Position.Left })[0]);
  }
  return (
    <svg className="compact-edges" data-edges={parts.length}
      style={{ position: "absolute", left: 0, top: 0, width: 1, height: 1, overflow: "visible", zIndex: -1, pointerEvents: "none" }}>
      <path className="react-flow__edge-path" d={parts.join(" ")} />
    </svg>
  );
});
