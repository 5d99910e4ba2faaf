// What opening a pipeline cost, as User Timing marks (`performance.mark`), so the browser test
// and bench/designer_open.py read the page's own figures instead of guessing from outside:
// DevTools shows the same marks in its timeline. Each mark is set once per opened file (the
// first time its phase is reached), so a later edit or measurement cannot move it.

const PREFIX = "mlpipe:";
let seen = new Set();

export function mark(name) {
  if (seen.has(name)) return;
  seen.add(name);
  performance.mark(PREFIX + name);
}

// A new file is being opened: its marks start afresh (the page's own boot marks stay).
export function restart() {
  for (const name of seen) if (name.startsWith("open:")) performance.clearMarks(PREFIX + name);
  seen = new Set([...seen].filter((n) => !n.startsWith("open:")));
}

// How often something happened since the page loaded (say, nodes whose size was guessed wrong).
const counts = {};
export function count(name, n = 1) {
  counts[name] = (counts[name] || 0) + n;
}
window.mlpipeCounts = () => ({ ...counts });

// {name: ms since navigation start} of every mark set so far.
export function timings() {
  const out = {};
  for (const entry of performance.getEntriesByType("mark"))
    if (entry.name.startsWith(PREFIX)) out[entry.name.slice(PREFIX.length)] = entry.startTime;
  return out;
}

window.mlpipeTimings = timings;
