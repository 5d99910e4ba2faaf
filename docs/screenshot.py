"""Screenshot of a compiled mlpipe DAG in the real Airflow 3 UI: ``docs/images/dag-graph.png``.

    .venv/bin/python docs/screenshot.py [--dag prep_train_evaluate] [--runs 2] [--out PNG]

Starts ``airflow standalone`` (tests/airflow_server.py) in a temporary AIRFLOW_HOME whose DAG
folder holds a copy of ``dags/DAG.py``, with the example sources beside it as in the repository
(``../examples/...``) and a fresh workspace (``$MLPIPE_WORKSPACE``) made by
``deploy/airflow_init.py`` the way the docker-compose init service makes one. It creates the DAG's
pools, triggers the DAG twice (``--runs``), waiting for each run, then opens the last run in
headless Chromium (Debian's ``chromium`` package), switches the DAG view to the graph and saves a
PNG: one node per step plus the pipeline's ``reuse check`` (the plan task ``mlpipe.plan``); in the
second run the check succeeded and skipped every step (reused). With two or more runs no PNG is
written unless the last run's task instances say exactly that (``reused_graph_problems``), so the
README's image cannot silently show something else.

Chromium is driven over the DevTools protocol (``websocket-client``, installed with Airflow's
Kubernetes provider) rather than with ``--screenshot``: the Airflow 3 UI keeps the grid/graph choice
in the browser's localStorage (``default_dag_view``), which has to be set before the page renders,
and the graph is drawn asynchronously, so the script waits until its nodes are on the page.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "deploy"))

import airflow_init  # noqa: E402
from airflow_server import AirflowServer  # noqa: E402

from mlpipe_provider.contract.constants import PLAN_TASK_ID  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-allow-origins=*",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    return None


def prepare_home(home: Path, dag_id: str) -> dict[str, str]:
    """Lay out DAG folder, examples and workspace under ``home``; return extra env vars."""
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dags" / f"{dag_id}.py", dags / f"{dag_id}.py")
    pools = REPO / "dags" / f"{dag_id}.pools.json"
    if pools.exists():
        shutil.copyfile(pools, dags / pools.name)
    # The DAG file refers to ../examples/<example>/src relative to itself: copy the examples
    # beside the DAG folder, as docker-compose mounts them (/opt/airflow/dags, /opt/airflow/examples).
    shutil.copytree(
        REPO / "examples",
        home / "examples",
        ignore=shutil.ignore_patterns(
            "__pycache__", "data", "datastores", "runs", "airflow", "cache", "envs", "dags"
        ),
    )
    workspace = airflow_init.init_workspace(home / "workspace", home / "examples")
    return {"MLPIPE_WORKSPACE": str(workspace)}


def set_pools(server: AirflowServer, dag_id: str) -> None:
    """Create or resize the pools of ``DAG.pools.json``, as ``mlpipe pools sync`` would."""
    pools = server.dags / f"{dag_id}.pools.json"
    if not pools.exists():
        return
    for name, pool in json.loads(pools.read_text()).items():
        body = {
            "name": name,
            "slots": pool["slots"],
            "description": pool.get("description"),
            "include_deferred": pool.get("include_deferred", False),
        }
        try:
            server.request("PATCH", f"/api/v2/pools/{urllib.request.quote(name)}", body)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            server.request("POST", "/api/v2/pools", body)


def reused_graph_problems(task_instances: dict[str, dict[str, Any]]) -> list[str]:
    """What keeps a run's graph from showing "the reuse check skipped every step"; [] when it does.

    The README says so under the picture; a rerun that (say) recomputed a step because the
    example's data changed would still make a valid-looking PNG, so the states are checked.
    """
    problems = []
    plan = task_instances.get(PLAN_TASK_ID)
    if plan is None or plan.get("state") != "success":
        problems.append(f"{PLAN_TASK_ID}: {plan.get('state') if plan else 'missing'}")
    steps = {t: ti.get("state") for t, ti in task_instances.items() if t != PLAN_TASK_ID}
    if not steps:
        problems.append("no step tasks")
    problems += [f"{t}: {state}, not skipped" for t, state in steps.items() if state != "skipped"]
    return problems


def run_dag(server: AirflowServer, dag_id: str, timeout_s: float = 240) -> tuple[str, str]:
    """Trigger the DAG and wait for the run: returns (run id, final state)."""
    run_id = server.trigger(dag_id)
    return run_id, server.wait_for_run(dag_id, run_id, timeout_s=timeout_s)


class DevTools:
    """Just enough of the Chrome DevTools protocol: send a command, wait for its answer."""

    def __init__(self, ws_url: str):
        import websocket  # websocket-client

        self._ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        self._next = 0

    def call(self, method: str, **params):
        self._next += 1
        self._ws.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def close(self) -> None:
        self._ws.close()


def _start_chromium(chromium: str, profile: Path, width: int, height: int) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _page_websocket(profile: Path, proc: subprocess.Popen, timeout_s: float = 30) -> str:
    """The DevTools websocket of the browser's first page (port from DevToolsActivePort)."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}")
        if port_file.exists() and port_file.read_text().strip():
            port = port_file.read_text().split()[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:  # noqa: S310
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
        time.sleep(0.2)
    raise TimeoutError("chromium did not open its DevTools port")


def _wait_for(tools: DevTools, expression: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if tools.evaluate(expression):
            return True
        time.sleep(0.25)
    return False


GRAPH_NODES = "document.querySelectorAll('.react-flow__node').length"


def _click(tools: DevTools, aria_label: str) -> bool:
    return bool(
        tools.evaluate(
            f"(b => b ? (b.click(), true) : false)"
            f"(document.querySelector('button[aria-label={json.dumps(aria_label)}]'))"
        )
    )


def screenshot(
    url: str,
    out: Path,
    *,
    origin: str,
    chromium: str | None = None,
    width: int = 1600,
    height: int = 600,
    expect_texts: tuple[str, ...] = (),
    details_panel: bool = False,
    timeout_s: float = 60,
) -> Path:
    """Open ``url`` with the DAG view set to the graph, wait for its nodes, save a PNG.

    Waits until the graph shows a node for each of ``expect_texts`` (task display names), so the
    picture is of the rendered graph, never of a login page or a spinner. The run's details
    panel is collapsed (``details_panel=False``) and the graph fitted to the page, so the tasks
    and their states are legible at README size.
    """
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install -y chromium)")
    profile = Path(tempfile.mkdtemp(prefix="mlpipe-chromium-"))
    proc = _start_chromium(chromium, profile, width, height)
    try:
        tools = DevTools(_page_websocket(profile, proc))
        try:
            tools.call("Page.enable")
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            # Same origin first, so the graph view can be chosen before the DAG page renders.
            tools.call("Page.navigate", url=origin + "/")
            _wait_for(tools, "document.readyState === 'complete'", timeout_s)
            tools.evaluate("localStorage.setItem('default_dag_view', JSON.stringify('graph'))")
            tools.call("Page.navigate", url=url)
            names = json.dumps(list(expect_texts))
            rendered = (
                f"{GRAPH_NODES} >= Math.max(1, {len(expect_texts)}) && {names}.every(n => "
                "[...document.querySelectorAll('.react-flow__node')].some(e => "
                "e.innerText.split('\\n').includes(n)))"
            )
            if not _wait_for(tools, rendered, timeout_s):
                text = tools.evaluate("document.body.innerText.slice(0, 500)")
                raise RuntimeError(
                    f"the graph on {url} did not show {list(expect_texts)} in {timeout_s} s; "
                    f"page text: {text!r}"
                )
            time.sleep(2)  # the run's task states arrive after the nodes
            if not details_panel and _click(tools, "Collapse Details Panel"):
                time.sleep(1)
                _click(tools, "Fit View")
            time.sleep(2)  # fit-to-view animates
            data = tools.call("Page.captureScreenshot", format="png")["data"]
        finally:
            tools.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(data))
    return out


def make_screenshot(
    dag_id: str = "prep_train_evaluate",
    out: Path | None = REPO / "docs" / "images" / "dag-graph.png",
    *,
    runs: int = 2,
    width: int = 1600,
    height: int = 600,
    home: Path | None = None,
    require_reused: bool = False,
) -> dict:
    """Start Airflow, run the DAG ``runs`` times, screenshot the last run's graph (``out=None``:
    no screenshot). Returns the DAG's REST details and tasks, each run's state and task
    instances, the page URL and the PNG. ``require_reused``: raise, before any PNG is written,
    unless the last run shows the reuse check succeeded and every step skipped."""
    keep = home is not None
    home = Path(home) if home else Path(tempfile.mkdtemp(prefix="mlpipe-screenshot-"))
    server = AirflowServer(home)
    server.env.update(prepare_home(home, dag_id))
    try:
        print(f"starting airflow standalone in {home} ...", flush=True)
        server.start()
        server.wait_for_dag(dag_id)
        set_pools(server, dag_id)
        states = {}
        task_instances = {}
        for _ in range(runs):
            run_id, state = run_dag(server, dag_id)
            states[run_id] = state
            task_instances[run_id] = server.task_instances(dag_id, run_id)
            print(f"run {run_id}: {state}", flush=True)
        if require_reused and (problems := reused_graph_problems(task_instances[run_id])):
            raise RuntimeError(
                f"run {run_id} does not show every step reused: {'; '.join(problems)}"
            )
        url = f"{server.url}/dags/{dag_id}/runs/{urllib.request.quote(run_id, safe='')}"
        result = {
            "dag": server.get(f"/api/v2/dags/{dag_id}/details"),
            "tasks": server.get(f"/api/v2/dags/{dag_id}/tasks")["tasks"],
            "states": states,
            # per run, in order; "task_instances" is the last run's, the one on the picture
            "runs": task_instances,
            "task_instances": task_instances[run_id],
            "url": url,
            "png": None,
        }
        if out is not None:
            tasks = result["tasks"]
            result["png"] = screenshot(
                url,
                Path(out),
                origin=server.url,
                width=width,
                height=height,
                expect_texts=tuple(t.get("task_display_name") or t["task_id"] for t in tasks),
            )
            print(f"saved {out} ({Path(out).stat().st_size} bytes) from {url}", flush=True)
        return result
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dag", default="prep_train_evaluate")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "dag-graph.png")
    parser.add_argument(
        "--runs",
        type=int,
        default=2,
        help="runs to trigger; the last is shown (default 2: the second reuses every step)",
    )
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument(
        "--home", type=Path, help="AIRFLOW_HOME to use and keep (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    result = make_screenshot(
        args.dag,
        args.out,
        runs=args.runs,
        width=args.width,
        height=args.height,
        home=args.home,
        require_reused=args.runs >= 2,  # the README's picture: the second run reuses every step
    )
    if set(result["states"].values()) != {"success"}:
        print(f"not every run succeeded: {result['states']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
