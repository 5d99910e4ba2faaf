"""Benchmark: opening a pipeline in the designer until it is laid out and answers a click.

Run from the repository root (builds the page first when ``static/`` is missing):

    uv run --frozen python bench/designer_open.py                 # 10 and 200 steps, 5 reps
    uv run --frozen python bench/designer_open.py --sizes 10,200,1000 --reps 3

It starts a real Airflow API server (``airflow standalone`` from tests/airflow_server.py, its own
``AIRFLOW_HOME`` in a temporary folder, simple auth manager) with the provider's plugin, so the
designer is reached as users reach it: ``/mlpipe/designer/`` behind Airflow's authentication.
The pipelines are chains of ``--sizes`` ``PythonScriptStep``s, each reading the previous step's
output and the one 7 back (a 200-step chain has 392 edges), written by the designer's own writer.

Debian's Chromium (headless, through Playwright) loads the page once, so its code is cached as
it is in the Airflow UI, then opens each pipeline ``--reps`` times, sizes interleaved. For each
open it takes the wall time from navigation to (a) every node on the canvas and the view fitted,
"laid out", and (b) a click on a node in view answered by the node showing as selected,
"interactive"; and the page's own User Timing marks (``designer/ui/src/perf.js``) and the
Resource Timing of ``GET /api/pipeline``, which split the time: bundle parse and start, the
palette request, the server's open (load the file, read the graph, lower it), download and JSON
parse, the layout, React's first commit, React Flow's measuring pass, and fitView. Figures are
medians; the smallest size is the baseline every size is given as a ratio to, measured in the
same run on the same machine (a shared machine's absolute figures move with its load).

``--check`` exits 1 when the largest size's median "interactive" is over ``--target`` (2 s).
``--url``/``--token``/``--root`` measure against a server already running (``--serve`` starts
one, prints them and waits), to iterate on the page without the minute a server takes to start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):  # tests/airflow_server.py: the tests' server
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

CHROMIUM = Path("/usr/bin/chromium")
STATIC = REPO / "mlpipe_provider" / "designer" / "static" / "index.html"
FOLDER = "bench"  # the pipelines' folder under the designer's root
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# React Flow's edges, or, zoomed far out, the segments of the page's one compact edge path
DRAWN_EDGES = (
    "(document.querySelectorAll('.react-flow__edge').length"
    " + Number(document.querySelector('.compact-edges')?.dataset.edges || 0))"
)
VISIBLE_NODE = """() => {
    const box = document.querySelector('main').getBoundingClientRect();
    for (const n of document.querySelectorAll('.react-flow__node')) {
        const r = n.getBoundingClientRect();
        if (r.left > box.left && r.right < box.right && r.top > box.top && r.bottom < box.bottom)
            return n.dataset.id;
    }
}"""
PAGE_FIGURES = """() => {
    const marks = window.mlpipeTimings ? window.mlpipeTimings() : {};
    const api = performance.getEntriesByType('resource')
        .filter((e) => e.name.includes('/api/pipeline?')).at(-1);
    const script = performance.getEntriesByType('resource')
        .filter((e) => e.initiatorType === 'script' || e.name.endsWith('.js')).at(-1);
    const pick = (e, keys) => e ? Object.fromEntries(keys.map((k) => [k, e[k]])) : null;
    return {
        marks,
        api: pick(api, ['requestStart', 'responseStart', 'responseEnd', 'encodedBodySize',
                        'decodedBodySize', 'transferSize']),
        script: pick(script, ['responseEnd', 'transferSize']),
        time_origin: performance.timeOrigin,
        counts: window.mlpipeCounts ? window.mlpipeCounts() : {},
    };
}"""


def chain_graph(n: int) -> Any:
    """``n`` script steps, each reading the previous step's output and the one 7 back."""
    from mlpipe_provider.designer.graph import DataRef, Graph, Step

    steps, data = [], []
    for i in range(n):
        out = f"d{i}"
        data.append({"name": out, "datastore": "workspaceblobstore"})
        ins = [f"d{j}" for j in (i - 1, i - 7) if j >= 0]
        args = [x for d in [*ins, out] for x in (f"--{d}", DataRef(data=d))]
        steps.append(
            Step(
                id=f"s{i}",
                name=f"s{i}",
                kind="PythonScriptStep",
                script_name="prep.py",
                source_directory="src",
                arguments=args,
                inputs=ins,
                outputs=[out],
                compute_target="cpu-cluster",
            )
        )
    return Graph(variable="chain", pipeline_data=data, steps=steps)


def chain_edges(n: int) -> int:
    return sum(1 for i in range(n) for j in (i - 1, i - 7) if j >= 0)


def write_pipelines(root: Path, sizes: list[int]) -> dict[int, str]:
    """The workspace (examples/.mlpipe's config), a script and one ``chainN.py`` per size."""
    from mlpipe_provider.designer.writer import write_pipeline

    (root / ".mlpipe").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / ".mlpipe" / "config.json", root / ".mlpipe" / "config.json")
    src = root / FOLDER / "src"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "prep_train_evaluate" / "src" / "prep.py", src / "prep.py")
    paths = {}
    for n in sizes:
        paths[n] = f"{FOLDER}/chain{n}.py"
        (root / paths[n]).write_text(write_pipeline(chain_graph(n)), encoding="utf-8")
    return paths


def build_page() -> None:
    if STATIC.is_file():
        return
    ui = REPO / "designer" / "ui"
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ui, check=True)  # noqa: S607
    subprocess.run(["npm", "run", "build"], cwd=ui, check=True)  # noqa: S607


def start_server(work: Path, root: Path) -> tuple[Any, str, str]:
    """A real Airflow API server with the designer over ``root``; (server, designer url, token)."""
    from airflow_server import AirflowServer

    home = work / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": "admin-pw"})
    )
    server = AirflowServer(home, parallelism=2)
    server.env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "MLPIPE_DESIGNER_ROOT": str(root),
        }
    )
    server.start(timeout_s=600)  # a shared machine under load can take minutes
    token = server.request("POST", "/auth/token", {"username": "admin", "password": "admin-pw"})
    return server, f"{server.url}/mlpipe/designer", token["access_token"]


@dataclass
class Open:
    """One open of one pipeline: wall times from navigation, and the page's own figures."""

    laid_out_s: float
    interactive_s: float
    marks: dict[str, float]
    api: dict[str, float]
    script: dict[str, float] | None
    navigation_s: float  # from asking the browser to navigate to the new document's time origin
    counts: dict[str, int]  # the page's counters: "resized", nodes whose guessed size was wrong
    cpu: dict[str, float]  # the page's main-thread seconds, navigation to click (CPU_METRICS)
    chrome_cpu_s: float | None  # CPU seconds all of Chromium used during the open


@dataclass
class Size:
    steps: int
    edges: int
    opens: list[Open] = field(default_factory=list)
    server_open_s: list[float] = field(default_factory=list)  # GET /api/pipeline, no browser


CPU_METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
MARKER = "--mlpipe-bench-designer"  # on the browser's command line, to find its processes
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def chrome_cpu_s() -> float | None:
    """CPU seconds used so far by the benchmark's Chromium (its browser process and every
    process under it: renderer, GPU, network), from /proc. Unlike wall time, this barely moves
    with the load other programs put on a shared machine: the figure to compare across runs."""
    procs: dict[int, tuple[int, float]] = {}  # pid -> (parent, cpu s)
    marked = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
            if MARKER in (entry / "cmdline").read_bytes().decode(errors="replace"):
                marked.add(int(entry.name))
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    roots = [pid for pid in marked if pid in procs and procs[pid][0] not in marked]
    if not roots:
        return None
    root = roots[0]
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += procs.get(pid, (0, 0.0))[1]
        todo.extend(p for p, (parent, _) in procs.items() if parent == pid)
    return total


def cpu_metrics(cdp: Any) -> dict[str, float]:
    """The page's main-thread time so far (Chrome's Performance domain, seconds)."""
    got = cdp.send("Performance.getMetrics")["metrics"]
    return {m["name"]: m["value"] for m in got if m["name"] in CPU_METRICS}


def open_once(
    page: Any, cdp: Any, url: str, path: str, steps: int, edges: int, timeout_ms: int
) -> Open:
    page.goto(f"{url}/")  # from the empty page, as a user opens a pipeline: no big page to unload
    page.wait_for_selector('[data-testid="palette"]')
    chrome_before = chrome_cpu_s()
    start = time.perf_counter()
    epoch = time.time()
    page.goto(f"{url}/?path={path}")
    page.wait_for_function(
        f"document.querySelectorAll('.react-flow__node').length === {steps}"
        f" && {DRAWN_EDGES} === {edges}"
        " && document.querySelector('[data-testid=canvas]').dataset.fitted === '1'",
        timeout=timeout_ms,
        polling="raf",
    )
    laid_out = time.perf_counter() - start
    node = page.evaluate(VISIBLE_NODE)
    if node is None:
        raise RuntimeError(f"{path}: no node inside the view after fitView")
    page.locator(f'.react-flow__node[data-id="{node}"]').click()
    page.wait_for_selector(f'[data-testid="step-{node}"].selected', timeout=timeout_ms)
    interactive = time.perf_counter() - start
    after = cpu_metrics(cdp)
    chrome_after = chrome_cpu_s()
    figures = page.evaluate(PAGE_FIGURES)
    return Open(
        laid_out,
        interactive,
        figures["marks"],
        figures["api"] or {},
        figures["script"],
        figures["time_origin"] / 1000 - epoch,
        figures["counts"],
        after,  # (the Performance domain counts per document: the new one's whole life)
        None if chrome_before is None or chrome_after is None else chrome_after - chrome_before,
    )


def server_open(url: str, token: str, path: str) -> float:
    """``GET /api/pipeline`` straight from Python: the server's part without a browser."""
    req = urllib.request.Request(
        f"{url}/api/pipeline?path={path}", headers={"Authorization": f"Bearer {token}"}
    )
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as response:  # noqa: S310 - loopback only
        response.read()
    return time.perf_counter() - start


def measure(url: str, token: str, paths: dict[int, str], reps: int) -> list[Size]:
    from playwright.sync_api import sync_playwright

    sizes = [Size(n, chain_edges(n)) for n in paths]
    for size in sizes:  # the server's import of the compiler, once, outside the figures
        server_open(url, token, paths[size.steps])
    host = url.split("/")[2].split(":")[0]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROME_ARGS, MARKER])
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 900})
            context.add_cookies([{"name": "_token", "value": token, "domain": host, "path": "/"}])
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.goto(f"{url}/")  # the page's code loaded and cached, as in the UI
            page.wait_for_selector('[data-testid="palette"]')
            for rep in range(reps):
                for size in sizes:
                    timeout = 60_000 + 100 * size.steps
                    size.opens.append(
                        open_once(
                            page, cdp, url, paths[size.steps], size.steps, size.edges, timeout
                        )
                    )
                    size.server_open_s.append(server_open(url, token, paths[size.steps]))
                    say(
                        f"rep {rep + 1}/{reps}, {size.steps} steps: laid out "
                        f"{size.opens[-1].laid_out_s:.2f} s, interactive "
                        f"{size.opens[-1].interactive_s:.2f} s"
                    )
        finally:
            browser.close()
    return sizes


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def phases(o: Open) -> dict[str, float | None]:
    """Where the open's time went (seconds): milestones after navigation start ("at"), and the
    phases between them, from the page's marks and the Resource Timing of ``/api/pipeline``."""
    m, api = o.marks, o.api

    def span(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else (b - a) / 1000

    return {
        "code started at": span(0, m.get("boot")),
        "open asked at": span(0, api.get("requestStart")),
        "server": span(api.get("requestStart"), api.get("responseStart")),
        "graph in at": span(0, m.get("open:fetched")),
        "layout": span(m.get("open:fetched"), m.get("open:layout")),
        "first render": span(m.get("open:layout"), m.get("open:rendered")),
        "fitted at": span(0, m.get("open:fitted")),
        "edges at": span(0, m.get("open:edges")),
        "click to selected": span(m.get("open:click"), m.get("open:selected")),
        "Chromium CPU": o.chrome_cpu_s,
        "page main thread": o.cpu.get("TaskDuration"),
        "of it script": o.cpu.get("ScriptDuration"),
        "of it layout+style": (
            o.cpu["LayoutDuration"] + o.cpu["RecalcStyleDuration"]
            if "LayoutDuration" in o.cpu and "RecalcStyleDuration" in o.cpu
            else None
        ),
    }


def fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table(sizes: list[Size]) -> str:
    base = sizes[0]
    base_interactive = median([o.interactive_s for o in base.opens])
    names = list(phases(base.opens[0]))
    head = [
        "steps",
        "edges",
        "JSON KB",
        "server open s (no browser)",
        *[f"{n} s" for n in names],
        "laid out s",
        "interactive s",
        f"ratio to {base.steps} steps",
    ]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size in sizes:
        split = [phases(o) for o in size.opens]
        interactive = median([o.interactive_s for o in size.opens])
        kb = median([o.api.get("decodedBodySize") for o in size.opens])
        cells = [
            str(size.steps),
            str(size.edges),
            fmt(kb / 1024 if kb else None, 0),
            fmt(median(size.server_open_s)),
            *[fmt(median([s[n] for s in split])) for n in names],
            fmt(median([o.laid_out_s for o in size.opens])),
            fmt(interactive),
            f"{interactive / base_interactive:.2f}x" if interactive and base_interactive else "n/a",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,200", help="step counts; the first is the baseline")
    parser.add_argument("--reps", type=int, default=5, help="opens per size (interleaved)")
    parser.add_argument("--target", type=float, default=2.0, help="seconds, for --check")
    parser.add_argument("--check", action="store_true", help="exit 1 when over --target")
    parser.add_argument("--url", help="a designer already serving (…/mlpipe/designer)")
    parser.add_argument("--token", help="an access token for --url")
    parser.add_argument("--root", type=Path, help="the designer root of --url (files go there)")
    parser.add_argument("--serve", action="store_true", help="start a server, print it, wait")
    parser.add_argument("--json", type=Path, help="also write every open's figures here")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if not CHROMIUM.is_file():
        print("no /usr/bin/chromium (apt-get install -y chromium)", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    build_page()
    work = Path(tempfile.mkdtemp(prefix="mlpipe-bench-designer-"))
    server = None
    try:
        if args.url:
            url, token, root = args.url, args.token, args.root
        else:
            root = work / "pipelines"
            started = time.perf_counter()
            server, url, token = start_server(work, root)
            say(f"server healthy after {time.perf_counter() - started:.1f} s")
        paths = write_pipelines(root, sizes)
        if args.serve:
            print(json.dumps({"url": url, "token": token, "root": str(root)}), flush=True)
            signal.pause()
        load_before = load_average()
        measured = measure(url, token, paths, args.reps)
        print(
            f"\n## Opening a pipeline in the designer (headless Chromium, medians of {args.reps};"
            f" load average {load_before} before, {load_average()} after)\n"
        )
        print(table(measured))
        if args.json:
            args.json.write_text(
                json.dumps(
                    [{"steps": s.steps, "opens": [o.__dict__ for o in s.opens]} for s in measured]
                )
            )
        worst = median([o.interactive_s for o in measured[-1].opens])
        if args.check and (worst is None or worst > args.target):
            print(f"\n{measured[-1].steps} steps: interactive {worst} s, over {args.target} s")
            return 1
        return 0
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
