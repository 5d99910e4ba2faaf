// Hand-written SVG charts for the Metrics panel: a line chart (series of points) and a heatmap
// (a confusion matrix). No chart package: two small components keep the page's bundle small.
import React from "react";

const COLORS = ["#2680c2", "#e12d39", "#27ab83", "#f0b429", "#8719e0", "#52606d", "#d9822b"];
const W = 420;
const H = 220;
const M = { top: 10, right: 12, bottom: 34, left: 48 };
const DOTS_UP_TO = 120; // points drawn as dots when a series has at most this many

function fmt(v) {
  if (typeof v !== "number") return String(v);
  if (v !== 0 && (Math.abs(v) >= 1e5 || Math.abs(v) < 1e-3)) return v.toExponential(1);
  return String(Number(v.toPrecision(3)));
}

function extent(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  return [lo, hi];
}

function ticks([lo, hi], whole = false, n = 4) {
  if (!whole) return Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
  // steps, indexes, epochs: whole numbers only
  const step = Math.max(1, Math.ceil((hi - lo) / n));
  const out = [];
  for (let t = Math.ceil(lo); t <= hi; t += step) out.push(t);
  return out;
}

export function LineChart({ entry }) {
  const series = entry.series.filter((s) => s.x.length > 0);
  const xs = series.flatMap((s) => s.x);
  const ys = series.flatMap((s) => s.y);
  const whole = xs.every(Number.isInteger);
  const [x0, x1] = extent(xs);
  const [y0, y1] = extent(ys);
  const px = (x) => M.left + ((x - x0) / (x1 - x0)) * (W - M.left - M.right);
  const py = (y) => H - M.bottom - ((y - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H}`} width="100%" data-testid="line-chart"
      role="img" aria-label={`${entry.name}: ${entry.y_label} over ${entry.x_label}`}>
      <g className="axis">
        {ticks([y0, y1]).map((t) => (
          <g key={`y${t}`}>
            <line x1={M.left} x2={W - M.right} y1={py(t)} y2={py(t)} className="grid" />
            <text x={M.left - 4} y={py(t) + 3} textAnchor="end">{fmt(t)}</text>
          </g>
        ))}
        {ticks([x0, x1], whole).map((t) => (
          <text key={`x${t}`} x={px(t)} y={H - M.bottom + 12} textAnchor="middle">{fmt(t)}</text>
        ))}
        <text x={(M.left + W - M.right) / 2} y={H - 4} textAnchor="middle" className="label">{entry.x_label}</text>
        <text x={10} y={(M.top + H - M.bottom) / 2} textAnchor="middle" className="label"
          transform={`rotate(-90 10 ${(M.top + H - M.bottom) / 2})`}>{entry.y_label}</text>
      </g>
      {series.map((s, i) => {
        const color = COLORS[i % COLORS.length];
        const points = s.x.map((x, j) => [px(x), py(s.y[j])]);
        return (
          <g key={s.label} data-testid="series" data-points={points.length}>
            <polyline fill="none" stroke={color} strokeWidth="1.5" points={points.map((p) => p.join(",")).join(" ")} />
            {points.length <= DOTS_UP_TO && points.map(([cx, cy], j) => (
              <circle key={j} cx={cx} cy={cy} r="2.5" fill={color} data-testid="point">
                <title>{`${s.label}: ${fmt(s.x[j])}, ${fmt(s.y[j])}`}</title>
              </circle>
            ))}
          </g>
        );
      })}
      {series.length > 1 && series.map((s, i) => (
        <g key={`legend-${s.label}`} transform={`translate(${M.left + 8 + i * 80} ${M.top + 4})`}>
          <rect width="10" height="3" y="3" fill={COLORS[i % COLORS.length]} />
          <text x="14" y="8">{s.label}</text>
        </g>
      ))}
    </svg>
  );
}

// A confusion matrix: rows are the actual classes, columns the predicted ones (v1's layout);
// a cell is darker the more rows it counts.
export function Heatmap({ entry }) {
  const { labels, matrix } = entry;
  const n = labels.length;
  const cell = Math.max(22, Math.min(56, Math.floor(300 / Math.max(n, 1))));
  const left = 70;
  const top = 30;
  const size = cell * n;
  const max = Math.max(1, ...matrix.flat());
  return (
    <svg className="chart" width={left + size + 10} height={top + size + 8} data-testid="heatmap"
      role="img" aria-label={`${entry.name}: confusion matrix of ${n} classes`}>
      <text x={left + size / 2} y={12} textAnchor="middle" className="label">Predicted</text>
      <text x={10} y={top + size / 2} textAnchor="middle" className="label"
        transform={`rotate(-90 10 ${top + size / 2})`}>Actual</text>
      {labels.map((label, j) => (
        <text key={`c${label}`} x={left + j * cell + cell / 2} y={top - 4} textAnchor="middle">{label}</text>
      ))}
      {matrix.map((row, i) => (
        <g key={`r${labels[i]}`}>
          <text x={left - 4} y={top + i * cell + cell / 2 + 4} textAnchor="end">{labels[i]}</text>
          {row.map((value, j) => {
            const shade = value / max;
            return (
              <g key={j} data-testid="cell" data-value={value}>
                <rect x={left + j * cell} y={top + i * cell} width={cell} height={cell}
                  fill={`rgba(38, 128, 194, ${0.08 + 0.92 * shade})`} stroke="white" />
                <text x={left + j * cell + cell / 2} y={top + i * cell + cell / 2 + 4} textAnchor="middle"
                  style={{ fill: shade > 0.55 ? "white" : "#1f2933" }}>{fmt(value)}</text>
              </g>
            );
          })}
        </g>
      ))}
    </svg>
  );
}
