"""The designer in a real Airflow API server and a real headless Chromium (Debian's).

One server (its own AIRFLOW_HOME, simple auth manager with an admin and a read-only viewer)
mounts the provider's plugin, so the designer is reached exactly as users reach it:
``/mlpipe/designer/`` behind Airflow's authentication. The pipelines folder is a copy of
examples/. Checked: no token -> 401, a viewer reads but cannot validate or save (403); in the
browser, an example opens and saves back byte for byte; a script step dragged from the palette,
connected to a datastore's data, given an output and a parameter, saves as a file that compiles
and runs (embedded, ``dag.test``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from airflow_server import AirflowServer
from services import unavailable

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
STATIC = REPO / "mlpipe_provider" / "designer" / "static" / "index.html"
SCRIPT = """import argparse, csv, os
p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--rows", required=True)
p.add_argument("--scale", type=int, required=True)
p.add_argument("--iris_files")  # a registered file dataset, mounted
a = p.parse_args()
if a.iris_files:
    assert sorted(os.listdir(a.iris_files)) == ["iris.csv"], os.listdir(a.iris_files)
with open(a.data) as f:
    n = sum(1 for _ in csv.reader(f)) - 1
os.makedirs(a.rows, exist_ok=True)
with open(os.path.join(a.rows, "rows.txt"), "w") as f:
    f.write(str(n * a.scale))
"""

# A script step reading whatever folder the canvas connects to it (``--<data name> <folder>``).
SUMMARIZE = """import os, sys
from mlpipe_provider.sdk import Run
[flag, folder] = sys.argv[1:3]
with open(os.path.join(folder, "data.csv")) as f:
    header, *rows = f.read().splitlines()
assert header == "a", header  # Select Columns kept only column a
Run.get_context().log("summarized_rows", len(rows))
"""

REPORT = """import argparse, os, struct, tempfile, zlib
from mlpipe_provider.sdk import Run
p = argparse.ArgumentParser()
p.add_argument("--rows", required=True)
a = p.parse_args()
run = Run.get_context()
with open(os.path.join(a.rows, "rows.txt")) as f:
    n = int(f.read())
run.log("scaled_rows", n)
run.log_list("row counts", [n // 3, n // 2, n - 1, n])
run.log_confusion_matrix("Confusion matrix", {"schema_type": "confusion_matrix",
    "schema_version": "1.0.0", "data": {"class_labels": ["low", "mid", "high"],
    "matrix": [[5, 1, 0], [1, 4, 2], [0, 1, 6]]}})
run.log_table("ROC curve", {"False positive rate": [0, 0.1, 0.3, 1],
                            "True positive rate": [0, 0.6, 0.9, 1]})
def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
pixels = b"".join(b"\\0" + b"\\x26\\x80\\xc2" * 3 for _ in range(2))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 3, 2, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(pixels)) + chunk(b"IEND", b""))
image = os.path.join(tempfile.mkdtemp(), "swatch.png")  # not in the (hashed) source folder
with open(image, "wb") as f:
    f.write(png)
run.log_image("swatch", path=image)
"""


def _build_page() -> None:
    if STATIC.is_file():
        return
    ui = REPO / "designer" / "ui"
    if shutil.which("npm") is None:
        unavailable("chromium", "npm is needed to build the designer's page")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ui, check=True)  # noqa: S607
    subprocess.run(["npm", "run", "build"], cwd=ui, check=True)  # noqa: S607


def _call(url: str, method: str = "GET", body=None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - loopback only
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def designer(tmp_path_factory):
    _build_page()
    home = tmp_path_factory.mktemp("designer-airflow")
    root = tmp_path_factory.mktemp("designer") / "pipelines"
    shutil.copytree(
        REPO / "examples", root, ignore=shutil.ignore_patterns("__pycache__", "datastores")
    )
    steps = root / "prep_train_evaluate" / "steps"
    steps.mkdir()
    (steps / "count_rows.py").write_text(SCRIPT)
    (steps / "report.py").write_text(REPORT)
    (steps / "summarize.py").write_text(SUMMARIZE)
    data = root / ".mlpipe" / "datastores" / "workspaceblobstore" / "iris"
    data.mkdir(parents=True)
    (data / "iris.csv").write_text("a,b\n1,2\n3,4\n5,6\n")
    from mlpipe_provider.sdk import Dataset, Datastore, Workspace

    ws = Workspace(_workspace_dir=root / ".mlpipe")
    files = Dataset.File.from_files(path=(Datastore.get(ws, "workspaceblobstore"), "iris/"))
    files.register(ws, "iris_files", description="the iris CSV files")
    (home / "simple_auth_manager_passwords.json.generated").write_text(
        json.dumps({"admin": "admin-pw", "viewer": "viewer-pw"})
    )
    server = AirflowServer(home, parallelism=2)
    server.env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "MLPIPE_DESIGNER_ROOT": str(root),
        }
    )
    server.start()
    try:
        tokens = {}
        for user in ("admin", "viewer"):
            status, body = _call(
                f"{server.url}/auth/token",
                "POST",
                {"username": user, "password": f"{user}-pw"},
            )
            assert status in (200, 201), body
            tokens[user] = body["access_token"]
        yield {
            "url": f"{server.url}/mlpipe/designer",
            "root": root,
            "tokens": tokens,
            "dags": server.dags,
        }
    finally:
        server.stop()


@pytest.mark.airflow_server
def test_auth_no_token_401_viewer_reads_but_cannot_save(designer):
    url, tokens = designer["url"], designer["tokens"]
    path = "prep_train_evaluate/pipeline.py"
    assert _call(f"{url}/api/pipeline?path={path}")[0] == 401
    status, opened = _call(f"{url}/api/pipeline?path={path}", token=tokens["viewer"])
    assert status == 200 and [s["name"] for s in opened["graph"]["steps"]] == [
        "prep",
        "train",
        "evaluate",
    ]
    assert _call(f"{url}/api/me", token=tokens["viewer"])[1]["can_edit"] is False
    body = {"path": path, "graph": opened["graph"], "base_hash": opened["hash"]}
    assert _call(f"{url}/api/save", "POST", body, token=tokens["viewer"])[0] == 403
    assert _call(f"{url}/api/validate", "POST", body, token=tokens["viewer"])[0] == 403
    assert _call(f"{url}/api/save", "POST", body, token=tokens["admin"])[1]["written"] is False
    # a viewer may not trigger DAG runs, so may not run from the designer either
    run = {"path": path, "parameters": {}}
    assert _call(f"{url}/api/run", "POST", run, token=tokens["viewer"])[0] == 403
    assert _call(f"{url}/api/me", token=tokens["viewer"])[1]["can_run"] is False
    assert (
        _call(f"{url}/api/publish", "POST", {**run, "name": "x"}, token=tokens["viewer"])[0] == 403
    )
    # nor save, run or publish a draft (but may list them)
    draft = {"path": path, "graph": opened["graph"], "name": "viewer-draft"}
    assert _call(f"{url}/api/draft", "POST", draft, token=tokens["viewer"])[0] == 403
    ref = {"path": path, "id": "00000000-0000-0000-0000-000000000000"}
    assert _call(f"{url}/api/draft/run", "POST", ref, token=tokens["viewer"])[0] == 403
    assert _call(f"{url}/api/draft/publish", "POST", ref, token=tokens["viewer"])[0] == 403
    assert _call(f"{url}/api/drafts?path={path}", token=tokens["viewer"]) == (200, {"drafts": []})
    # bad requests are 4xx with a message naming the problem
    status, err = _call(f"{url}/api/pipeline?path=../../etc/passwd.py", token=tokens["admin"])
    assert status == 400 and "not an allowed name" in err["detail"]
    # the page is in the UI's navigation, through the provider's plugin
    status, plugins = _call(f"{url.split('/mlpipe')[0]}/api/v2/plugins", token=tokens["admin"])
    [ours] = [p for p in plugins["plugins"] if p["name"] == "mlpipe"]
    assert ours["external_views"][0]["href"] == "/mlpipe/designer/"
    stale = {**body, "base_hash": "0" * 64}
    status, err = _call(f"{url}/api/save", "POST", stale, token=tokens["admin"])
    assert status == 409 and "changed on disk" in err["detail"]


def _browser(playwright, designer, user: str):
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    host = designer["url"].split("/")[2].split(":")[0]
    port = designer["url"].split("/")[2].split(":")[1]
    context.add_cookies(
        [{"name": "_token", "value": designer["tokens"][user], "domain": host, "path": "/"}]
    )
    del port
    return browser, context.new_page()


@pytest.fixture(scope="module")
def playwright_driver():
    if not CHROMIUM.is_file():
        unavailable("chromium", "no /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_open_example_and_save_unchanged(designer, playwright_driver):
    path = "prep_train_evaluate/pipeline.py"
    before = (designer["root"] / path).read_bytes()
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{designer['url']}/?path={path}")
        page.wait_for_selector('[data-testid="step-evaluate"]', timeout=30_000)
        # raw_data -> prep, prepared -> train and evaluate, model -> evaluate
        page.wait_for_function("document.querySelectorAll('.react-flow__edge').length === 4")
        page.click('[data-testid="save"]')
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.includes('unchanged')",
            timeout=30_000,
        )
        # a module's output port is named apart from the PipelineData bound to it: every edge of
        # the built-ins example (a chain of modules) is drawn from the producing port
        from mlpipe_provider.designer.graph import Graph

        status, opened = _call(
            f"{designer['url']}/api/pipeline?path=builtins/pipeline.py",
            token=designer["tokens"]["admin"],
        )
        edges = Graph(**opened["graph"]).edges()
        assert status == 200 and len(edges) >= 6
        page.goto(f"{designer['url']}/?path=builtins/pipeline.py")
        page.wait_for_function(
            f"document.querySelectorAll('.react-flow__edge').length === {len(edges)}",
            timeout=30_000,
        )
    finally:
        browser.close()
    assert (designer["root"] / path).read_bytes() == before


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_viewer_sees_read_only(designer, playwright_driver):
    browser, page = _browser(playwright_driver, designer, "viewer")
    try:
        page.goto(f"{designer['url']}/?path=prep_train_evaluate/pipeline.py")
        page.wait_for_selector('[data-testid="step-prep"]', timeout=30_000)
        page.wait_for_selector("text=read only", timeout=30_000)  # once /api/me answered
        assert page.locator('[data-testid="save"]').count() == 0
        assert page.locator('[data-testid="run"]').count() == 0
    finally:
        browser.close()


def _drag_to_canvas(page, source: str, x: int, y: int) -> None:
    """HTML5 drag and drop from the palette onto the canvas at (x, y) of the page."""
    page.dispatch_event(
        source, "dragstart", {"dataTransfer": page.evaluate_handle("new DataTransfer()")}
    )
    page.evaluate(
        """([source, x, y]) => {
            const dt = new DataTransfer();
            document.querySelector(source).dispatchEvent(new DragEvent('dragstart', {dataTransfer: dt, bubbles: true}));
            const target = document.querySelector('[data-testid=canvas]');
            for (const type of ['dragenter', 'dragover', 'drop'])
                target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true, clientX: x, clientY: y}));
        }""",
        [source, x, y],
    )


def _connect(page, source: str, target: str) -> None:
    a = page.locator(source).bounding_box()
    b = page.locator(target).bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_build_save_compile_run(designer, playwright_driver, run_dag, tmp_path):
    path = "prep_train_evaluate/counted.py"
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{designer['url']}/?path={path}")
        page.wait_for_selector('[data-testid="palette-script-count_rows.py"]', timeout=30_000)
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.includes('new pipeline')"
        )
        _drag_to_canvas(page, '[data-testid="palette-datastore-workspaceblobstore"]', 500, 300)
        page.wait_for_selector('[data-testid="data-data"]')
        page.fill('[data-testid="field-path_on_datastore"]', "iris/iris.csv")
        _drag_to_canvas(page, '[data-testid="palette-script-count_rows.py"]', 900, 450)
        page.wait_for_selector('[data-testid="step-count_rows"]')
        _connect(
            page,
            '[data-testid="source-data"]',
            '[data-testid="step-count_rows"] [data-testid="target-__new_input__"]',
        )
        page.wait_for_selector(".react-flow__edge")
        # the DataReference renamed in the side form: the step's input and argument follow
        page.click('[data-testid="data-data"]')
        page.fill('[data-testid="field-data_reference_name"]', "iris_csv")
        page.press('[data-testid="field-data_reference_name"]', "Enter")
        page.wait_for_selector('[data-testid="data-iris_csv"]')
        assert page.locator(".react-flow__edge").count() == 1
        # a registered dataset from the palette, mounted into the same step
        _drag_to_canvas(page, '[data-testid="palette-dataset-iris_files"]', 500, 560)
        page.wait_for_selector('[data-testid="data-iris_files"]:has-text("Dataset · iris_files")')
        assert page.locator('[data-testid="field-dataset-mode"]').input_value() == "mount"
        _connect(
            page,
            '[data-testid="source-iris_files"]',
            '[data-testid="step-count_rows"] [data-testid="target-__new_input__"]',
        )
        page.wait_for_function("document.querySelectorAll('.react-flow__edge').length === 2")
        page.click('[data-testid="step-count_rows"]')
        page.fill('[data-testid="env-new-name"]', "ROWS_MODE")
        page.fill('[data-testid="env-new-value"]', "fast'); import os #")
        page.click('[data-testid="env-add"]')
        page.fill('[data-testid="new-output"]', "rows")
        page.click('[data-testid="add-output"]')
        page.select_option('[data-testid="output-datastore-rows"]', "archive")
        page.select_option('[data-testid="field-compute_target"]', "cpu-cluster")
        page.fill('[data-testid="arg-flag"]', "--scale")
        page.fill('[data-testid="arg-value"]', "@scale")
        page.click('[data-testid="add-arg"]')
        # the parameter does not exist yet: live validation marks the step and the field
        page.wait_for_selector('[data-testid="step-count_rows"].has-problem', timeout=30_000)
        page.click(".react-flow__pane", position={"x": 20, "y": 20})
        page.fill('[data-testid="new-param"]', "scale=3")
        page.click('[data-testid="add-param"]')
        page.wait_for_selector('[data-testid="step-count_rows"]:not(.has-problem)', timeout=30_000)
        page.screenshot(path=str(tmp_path / "designer.png"))
        page.click('[data-testid="save"]')
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.startsWith('saved')",
            timeout=30_000,
        )
        assert "unchanged" not in page.locator('[data-testid="status"]').text_content()
    finally:
        browser.close()
    saved = designer["root"] / path
    text = saved.read_text()
    assert "PythonScriptStep(" in text and "'--scale', scale" in text
    assert "data_reference_name='iris_csv'" in text and "'--data', iris_csv" in text
    assert "rows = PipelineData(name='rows', datastore=archive_datastore)" in text
    assert (
        "iris_files = Dataset.get_by_name(ws, name='iris_files')"
        ".as_named_input('iris_files').as_mount()" in text
    )
    assert "'--iris_files', iris_files" in text
    assert "environment_variables = {'ROWS_MODE': \"fast'); import os #\"}" in text
    assert (designer["root"] / "prep_train_evaluate" / "counted.layout.json").is_file()

    from compiler.loader import load_pipelines

    [found] = load_pipelines(str(saved))
    _, records = run_dag(found.pipeline, "designer_counted")
    assert records["count_rows"][0] == "success"
    rows = list((designer["root"] / ".mlpipe" / "datastores").rglob("rows.txt"))
    assert [r.read_text() for r in rows] == ["9"]
    assert "archive" in rows[0].relative_to(designer["root"]).parts  # the datastore chosen
    # the designer's file reuses like any other: nothing changed, so the second run skips the step
    _, again = run_dag(found.pipeline, "designer_counted")
    assert again["count_rows"][0] == "skipped"


def _chain_of(n: int):
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


VISIBLE_NODE = """() => {
    const box = document.querySelector('main').getBoundingClientRect();
    for (const n of document.querySelectorAll('.react-flow__node')) {
        const r = n.getBoundingClientRect();
        if (r.left > box.left && r.right < box.right && r.top > box.top && r.bottom < box.bottom)
            return n.dataset.id;
    }
}"""


PAGE_MARKS = "() => window.mlpipeTimings()"  # designer/ui/src/perf.js: ms since navigation


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_200_steps_laid_out_and_interactive(designer, playwright_driver, record_property):
    from mlpipe_provider.designer.writer import write_pipeline

    path = "prep_train_evaluate/chain200.py"
    (designer["root"] / path).write_text(write_pipeline(_chain_of(200)))
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{designer['url']}/")  # the page's code loaded and cached, as in the UI
        start = time.perf_counter()
        page.goto(f"{designer['url']}/?path={path}")
        page.wait_for_function(
            "document.querySelectorAll('.react-flow__node').length === 200"
            # zoomed far out, all edges are one path (compact.jsx), else React Flow's
            " && document.querySelector('.compact-edges')?.dataset.edges === '392'"
            " && document.querySelector('[data-testid=canvas]').dataset.fitted === '1'",
            timeout=30_000,
        )
        laid_out = time.perf_counter() - start
        node = page.evaluate(VISIBLE_NODE)
        assert node is not None  # fitted into view, not one 60,000 px row
        # fitted far out, the nodes are drawn compact (their name, no ports)
        assert page.locator(f'[data-testid="step-{node}"].compact').count() == 1
        assert page.locator(".react-flow__handle").count() == 0
        page.locator(f'.react-flow__node[data-id="{node}"]').click()
        page.wait_for_selector(f'[data-testid="step-{node}"].selected')
        interactive = time.perf_counter() - start
        marks = page.evaluate(PAGE_MARKS)
        # zoomed in (x1.2 a click), the nodes are drawn in full again, with their ports
        for _ in range(6):
            page.locator(".react-flow__controls-zoomin").click()
        page.wait_for_selector(".react-flow__node .step:not(.compact) .react-flow__handle")
        page.wait_for_selector(".react-flow__edge")  # React Flow's own edges again
        assert page.locator(".compact-edges").count() == 0
    finally:
        browser.close()
    # The page records where the time went (performance marks; bench/designer_open.py reads
    # the same ones): the graph arrived, was laid out, drawn, fitted, then answered the click.
    order = ["open:start", "open:fetched", "open:layout", "open:fitted", "open:click"]
    assert all(name in marks for name in [*order, "open:edges", "open:selected"]), marks
    assert [marks[n] for n in order] == sorted(marks[n] for n in order), marks
    assert marks["open:fitted"] / 1000 <= laid_out
    figures = {
        "laid_out_s": round(laid_out, 3),
        "interactive_s": round(interactive, 3),
        **{k: round(v / 1000, 3) for k, v in marks.items()},
    }
    for name, value in figures.items():
        record_property(f"designer_200_{name}", value)
    print(
        f"200 steps: laid out in {laid_out:.2f} s, a node selected at {interactive:.2f} s; {figures}"
    )
    # The issue's target is 2 s: bench/designer_open.py's median is 1.6 s at load average 13 on
    # this shared 2-core machine, single opens 1.2-2.2 s (docs/designer.md, "Size"), and the load
    # moves one open by seconds, so this bound catches a regression (the first version took
    # 28 s), not the target.
    assert interactive < 8


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_designer_opens_from_the_airflow_ui_navigation(designer, playwright_driver):
    server = designer["url"].split("/mlpipe")[0]
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{server}/plugin/mlpipe-designer")
        frame_element = page.wait_for_selector("iframe", timeout=60_000)
        assert "/mlpipe/designer" in frame_element.get_attribute("src")
        frame = frame_element.content_frame()
        frame.wait_for_selector('[data-testid="palette"]', timeout=30_000)
        assert frame.locator('[data-testid="save"]').count() == 0  # no file open yet
        frame.wait_for_selector('[data-testid="user"]:has-text("admin")')  # /api/me answered
        assert frame.locator("text=read only").count() == 0  # the admin may edit
    finally:
        browser.close()


def _runnable_graph():
    """datastore CSV -> count_rows (--scale from a PipelineParameter) -> report (logs a metric)."""
    from mlpipe_provider.designer.graph import DataRef, DataReferenceNode, Graph, Parameter, Step

    return Graph(
        variable="designer_run",
        parameters=[Parameter(name="scale", default=3)],
        data_references=[
            DataReferenceNode(
                name="iris", datastore="workspaceblobstore", path_on_datastore="iris/iris.csv"
            )
        ],
        pipeline_data=[{"name": "rows", "datastore": "workspaceblobstore"}],
        steps=[
            Step(
                id="count_rows",
                name="count_rows",
                kind="PythonScriptStep",
                script_name="count_rows.py",
                source_directory="steps",
                arguments=[
                    "--data",
                    DataRef(data="iris"),
                    "--rows",
                    DataRef(data="rows"),
                    "--scale",
                    DataRef(parameter="scale"),
                ],
                inputs=["iris"],
                outputs=["rows"],
            ),
            Step(
                id="report",
                name="report",
                kind="PythonScriptStep",
                script_name="report.py",
                source_directory="steps",
                arguments=["--rows", DataRef(data="rows")],
                inputs=["rows"],
            ),
        ],
    )


def _run_from_page(page, scale: int, expect: str, *, options=(), reload=False) -> dict:
    page.click('[data-testid="run"]')
    page.wait_for_selector('[data-testid="run-param-scale"]', timeout=30_000)
    assert page.input_value('[data-testid="run-param-scale"]') == "3"  # the parameter's default
    page.fill('[data-testid="run-param-scale"]', str(scale))
    for option in options:  # v1's submit options: regenerate / continue (on step failure)
        page.check(f'[data-testid="run-{option}"]')
    before = page.evaluate("location.search")
    page.click('[data-testid="run-start"]')
    if reload:  # the URL names the new run once it started: a reload follows it again
        page.wait_for_function(
            "before => location.search !== before && location.search.includes('run=')",
            arg=before,
            timeout=150_000,
        )
        page.reload()
    page.wait_for_selector('[data-testid="run-state"][data-state="success"]', timeout=150_000)
    for step in ("count_rows", "report"):
        page.wait_for_selector(
            f'[data-testid="step-{step}"][data-state="{expect}"]', timeout=10_000
        )
    return {"status": page.locator('[data-testid="status"]').text_content()}


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_run_live_states_then_reused(designer, playwright_driver, tmp_path):
    """Run from the page with a parameter: both steps turn executed, the report shows its metric;
    the same run again: both are reused, naming the run they reused. With regenerate_outputs
    checked they execute again, and a reload of the page (its URL names the run) follows it
    again; the recent-runs list picks an earlier run. Publish is a click; the canvas saved as a
    PipelineDraft is the SDK's draft, which runs (reused: same steps, same values), publishes and
    reopens (with its run) from the URL."""
    from mlpipe_provider.designer.writer import write_pipeline
    from mlpipe_provider.sdk import PipelineDraft, PipelineEndpoint, PublishedPipeline, Workspace

    path = "prep_train_evaluate/designer_run.py"
    (designer["root"] / path).write_text(write_pipeline(_runnable_graph()))
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{designer['url']}/?path={path}")
        page.wait_for_selector('[data-testid="step-report"]', timeout=30_000)
        start = time.perf_counter()
        _run_from_page(page, 5, "executed")
        first = time.perf_counter() - start
        metric = page.locator('[data-testid="step-report"] [data-testid="metrics"]').text_content()
        assert "scaled_rows" in metric and "15" in metric  # 3 rows x scale 5, logged by the step
        link = page.locator('[data-testid="step-report"] [data-testid="log-link"]')
        assert "/tasks/report" in link.get_attribute("href")
        page.screenshot(path=str(tmp_path / "designer-run.png"))
        first_run = page.locator('[data-testid="run-state"]').get_attribute("href").split("/")[-1]
        _metrics_panel_shows_charts(page, tmp_path)
        _metrics_and_image_routes(designer, path, first_run)
        start = time.perf_counter()
        _run_from_page(page, 5, "reused")
        again = time.perf_counter() - start
        # each reused step names, and links to, the task of the first run that produced it
        reused = page.locator('[data-testid="step-count_rows"] [data-testid="reused-from"]')
        assert f"reused run {first_run}" in reused.text_content()
        href = reused.locator("a").get_attribute("href")
        assert href.endswith(
            f"/dags/prep_train_evaluate__designer_run/runs/{first_run}/tasks/count_rows"
        )
        assert first_run not in page.locator('[data-testid="run-state"]').get_attribute("href")
        # the selected step, now reused, shows the metrics of the run it reused
        page.wait_for_selector('[data-testid="metrics-panel"] >> text=reused', timeout=10_000)
        _metrics_panel_shows_charts(page, None)

        start = time.perf_counter()
        _run_from_page(page, 5, "executed", options=("regenerate", "continue"), reload=True)
        regenerated = time.perf_counter() - start
        assert f"path={path.replace('/', '%2F')}" in page.url
        third_run = page.url.split("run=")[1].split("%2F")[-1]
        page.wait_for_selector('[data-testid="step-report"] [data-testid="metrics"]')
        start = time.perf_counter()
        # the recent runs of this pipeline, newest first; picking one follows it
        page.click('[data-testid="recent-runs"]')
        page.wait_for_selector('[data-testid="pick-run"]')
        listed = page.locator('[data-testid="pick-run"]').evaluate_all(
            "bs => bs.map(b => b.dataset.run)"
        )
        assert listed[0] == third_run and listed[-1] == first_run and len(listed) == 3
        page.click(f'[data-testid="pick-run"][data-run="{listed[1]}"]')
        page.wait_for_selector('[data-testid="step-report"][data-state="reused"]', timeout=10_000)
        assert listed[1] in page.url

        # publish is a click: the PublishedPipeline and the endpoint of the same name exist
        page.click('[data-testid="run"]')
        page.fill('[data-testid="publish-name"]', "designer-published")
        page.click('[data-testid="publish"]')
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.startsWith('published')",
            timeout=30_000,
        )
        ws = Workspace(_workspace_dir=designer["root"] / ".mlpipe")
        endpoint = PipelineEndpoint.get(ws, name="designer-published")
        assert endpoint.get_pipeline().name == "designer-published"
        assert PublishedPipeline.get(ws, endpoint.get_pipeline().id).name == "designer-published"
        picked_and_published = time.perf_counter() - start
        start = time.perf_counter()

        # save as a draft with the value used above: PipelineDraft sees it; it runs reused
        page.click('[data-testid="drafts"]')
        page.fill('[data-testid="draft-name"]', "designer-draft")
        page.fill('[data-testid="draft-param-scale"]', "5")
        page.click('[data-testid="draft-save"]')
        page.wait_for_selector('[data-testid="open-draft"]', timeout=30_000)
        [draft] = [d for d in PipelineDraft.list(ws) if d.name == "designer-draft"]
        assert draft.pipeline_parameters == {"scale": 5}
        assert draft.get_step_names() == ["count_rows", "report"]
        page.click('[data-testid="drafts"]')
        page.click('[data-testid="draft-run"]')
        page.wait_for_function("location.search.includes('run=draft__designer-draft')")
        page.reload()  # the draft and its run, from the URL
        page.wait_for_selector('[data-testid="open-draft"]:has-text("designer-draft")')
        page.wait_for_selector('[data-testid="run-state"][data-state="success"]', timeout=150_000)
        for step in ("count_rows", "report"):
            page.wait_for_selector(f'[data-testid="step-{step}"][data-state="reused"]')
        page.click('[data-testid="drafts"]')
        page.click('[data-testid="draft-publish"]')
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.startsWith('published draft')",
            timeout=30_000,
        )
        drafted = time.perf_counter() - start
    finally:
        browser.close()
    print(
        f"designer run: executed in {first:.1f} s, reused in {again:.1f} s, "
        f"regenerated (with a reload) in {regenerated:.1f} s; a recent run picked and published "
        f"in {picked_and_published:.1f} s; draft saved, run (reused, with a reload), published "
        f"in {drafted:.1f} s"
    )
    draft = PipelineDraft.get(ws, draft.id)
    assert draft.last_submitted_pipeline_run_id is not None
    assert "designer-draft" in [p.name for p in PublishedPipeline.list(ws)]
    request = json.loads(
        (ws._dir / "runs" / draft.last_submitted_pipeline_run_id / "request.json").read_text()
    )
    assert request["experiment"] == "designer-draft"
    assert request["tags"]["azureml.pipelineDraftId"] == draft.id
    rows = sorted((designer["root"] / ".mlpipe" / "datastores").rglob("rows.txt"))
    assert "15" in [r.read_text() for r in rows]
    # the run is recorded as every mlpipe run is, so PipelineRun and `mlpipe runs` follow it
    recorded = [
        json.loads(p.read_text())
        for p in (designer["root"] / ".mlpipe" / "runs").glob("*/request.json")
    ]
    mine = sorted(
        (r for r in recorded if r.get("dag_id") == "prep_train_evaluate__designer_run"),
        key=lambda r: r["created"],
    )
    assert [r["conf"] for r in mine[:2]] == [{"scale": 5}, {"scale": 5}]
    assert mine[2]["conf"] == {
        "scale": 5,
        "mlpipe_regenerate_outputs": True,
        "mlpipe_continue_on_step_failure": True,
    }
    assert mine[2]["regenerate_outputs"] is True and mine[2]["continue_on_step_failure"] is True


def _metrics_panel_shows_charts(page, tmp_path) -> None:
    """Selecting the report step opens its Metrics panel: a line of the list's 4 points, the
    confusion matrix as 9 cells, the ROC table as a curve, the image inline."""
    if page.locator('[data-testid="metrics-panel"]').count() == 0:
        page.click('[data-testid="step-report"] .name')
    points = '[data-testid="metric-row counts"] [data-testid="point"]'
    page.wait_for_selector(points, timeout=30_000)
    assert page.locator(points).count() == 4
    cells = page.locator('[data-testid="metric-Confusion matrix"] [data-testid="cell"]')
    assert [c.get_attribute("data-value") for c in cells.all()] == list("510142016")
    roc = page.locator('[data-testid="metric-ROC curve"] [data-testid="series"]')
    assert roc.get_attribute("data-points") == "4"
    scalars = page.locator('[data-testid="metric-scalars"]').text_content()
    assert "scaled_rows" in scalars and "15" in scalars
    page.wait_for_function(
        "document.querySelector('[data-testid=metric-image]')?.naturalWidth === 3",
        timeout=10_000,
    )
    if tmp_path is not None:
        page.screenshot(path=str(tmp_path / "designer-metrics.png"))


def _metrics_and_image_routes(designer, path: str, run_id: str) -> None:
    """The routes behind the panel: read access to task instances, this run's steps only, and
    only an image the step logged."""
    from urllib.parse import urlencode

    url, admin = designer["url"], designer["tokens"]["admin"]
    query = {
        "path": path,
        "dag_id": "prep_train_evaluate__designer_run",
        "run_id": run_id,
        "task_id": "report",
    }
    status, answer = _call(f"{url}/api/run/metrics?{urlencode(query)}", token=admin)
    assert status == 200, answer
    kinds = {e["name"]: e["kind"] for e in answer["metrics"]}
    assert kinds == {
        "scaled_rows": "scalar",
        "row counts": "line",
        "Confusion matrix": "confusion_matrix",
        "ROC curve": "line",
        "swatch": "image",
    }
    image = f"{url}/api/run/image?{urlencode({**query, 'name': 'swatch'})}"
    request = urllib.request.Request(image, headers={"Authorization": f"Bearer {admin}"})
    with urllib.request.urlopen(request, timeout=30) as r:  # noqa: S310 - loopback only
        assert r.headers["Content-Type"] == "image/png"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.read().startswith(b"\x89PNG")
    assert _call(image)[0] == 401
    assert _call(f"{url}/api/run/metrics?{urlencode(query)}")[0] == 401
    for change in (
        {"name": "../run.json"},
        {"name": "scaled_rows"},
        {"task_id": "no_such_step"},
        {"run_id": "mlpipe__not-a-run"},
    ):
        status, err = _call(
            f"{url}/api/run/image?{urlencode({**query, 'name': 'swatch', **change})}", token=admin
        )
        assert status == 404, (change, err)
    status, err = _call(
        f"{url}/api/run/image?{urlencode({**query, 'name': 'swatch', 'path': '../x.py'})}",
        token=admin,
    )
    assert status == 400, err


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_typed_module_form_and_promote_to_pipeline_parameter(designer, playwright_driver):
    """A built-in module's parameters are typed by its interface (a choice of the allowed values,
    a number within its range); one promoted becomes a PipelineParameter the step refers to."""
    from mlpipe_provider.sdk import Workspace, install_builtin_modules

    install_builtin_modules(
        Workspace(_workspace_dir=designer["root"] / ".mlpipe"),
        names=["Clean Missing Data", "Split Data", "Execute Python Script"],
    )
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{designer['url']}/?path=prep_train_evaluate/typed.py")
        page.wait_for_selector('[data-testid="palette-module-Split Data"]', timeout=30_000)
        _drag_to_canvas(page, '[data-testid="palette-module-Split Data"]', 600, 300)
        page.wait_for_selector('[data-testid="step-Split_Data"]')
        fraction = page.locator('[data-testid="param-fraction"]')
        assert fraction.get_attribute("type") == "number"
        assert fraction.get_attribute("max") == "1" and fraction.input_value() == "0.5"
        assert page.locator('[data-testid="param-randomized_split"]').is_checked()
        _drag_to_canvas(page, '[data-testid="palette-module-Clean Missing Data"]', 900, 450)
        page.wait_for_selector('[data-testid="step-Clean_Missing_Data"]')
        mode = page.locator('[data-testid="param-cleaning_mode"]')
        options = mode.locator("option").all_text_contents()
        assert options[0] == "Remove entire row" and "Replace with mean" in options
        mode.select_option("Replace with mean")
        page.click('[data-testid="promote-cleaning_mode"]')
        assert mode.input_value() == "@Clean_Missing_Data_cleaning_mode"
        page.click(".react-flow__pane", position={"x": 20, "y": 20})
        promoted = page.locator('[data-testid="param-Clean_Missing_Data_cleaning_mode"]')
        assert promoted.input_value() == "Replace with mean"  # the value it had, as default
        # a multi-line parameter (the user's Python script) is edited in a text area
        _drag_to_canvas(page, '[data-testid="palette-module-Execute Python Script"]', 700, 600)
        page.wait_for_selector('[data-testid="step-Execute_Python_Script"]')
        script = page.locator('[data-testid="param-python_script"]')
        assert script.evaluate("e => e.tagName") == "TEXTAREA"
        assert "def azureml_main(dataframe1=None, dataframe2=None):" in script.input_value()
    finally:
        browser.close()


def _wait_run(url: str, token: str, started: dict, timeout_s: float = 150) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        query = f"dag_id={started['dag_id']}&run_id={started['run_id']}"
        status, state = _call(f"{url}/api/run?{query}", token=token)
        assert status == 200, state
        if state["state"] in ("success", "failed"):
            return state
        time.sleep(1)
    raise TimeoutError(started)


@pytest.mark.airflow_server
def test_api_failed_step_error_tail_bad_parameters_and_publish(designer):
    """A failing step is "failed" with the tail of its log and the link to it; a bad parameter
    or a pipeline with problems is refused before anything runs; publish makes a
    PublishedPipeline and the PipelineEndpoint of the same name, as ``pipeline.publish`` does."""
    from mlpipe_provider.designer.graph import Graph, Step
    from mlpipe_provider.designer.writer import write_pipeline
    from mlpipe_provider.sdk import PipelineEndpoint, PublishedPipeline, Workspace

    url, admin = designer["url"], designer["tokens"]["admin"]
    steps = designer["root"] / "prep_train_evaluate" / "steps"
    (steps / "boom.py").write_text("raise ValueError('the rows are bad: 42')\n")
    path = "prep_train_evaluate/designer_boom.py"
    graph = Graph(
        variable="designer_boom",
        steps=[
            Step(
                id="boom",
                name="boom",
                kind="PythonScriptStep",
                script_name="boom.py",
                source_directory="steps",
            )
        ],
    )
    (designer["root"] / path).write_text(write_pipeline(graph))
    status, err = _call(
        f"{url}/api/run", "POST", {"path": path, "parameters": {"nope": 1}}, token=admin
    )
    assert status == 422 and "unknown parameter 'nope'" in err["detail"]["message"]
    broken = "prep_train_evaluate/designer_broken.py"
    bad = graph.model_copy(deep=True)
    bad.variable = "designer_broken"
    bad.steps[0].compute_target = "no-such-cluster"
    (designer["root"] / broken).write_text(write_pipeline(bad))
    status, err = _call(f"{url}/api/run", "POST", {"path": broken}, token=admin)
    assert status == 422 and err["detail"]["problems"][0]["step"] == "boom", err
    # a DAG file of the same name that the designer did not write is left alone
    other = graph.model_copy(update={"variable": "designer_other"})
    (designer["root"] / "prep_train_evaluate" / "designer_other.py").write_text(
        write_pipeline(other)
    )
    foreign = designer["dags"] / "prep_train_evaluate__designer_other.py"
    foreign.write_text("# someone else's DAG\n")
    status, err = _call(
        f"{url}/api/run", "POST", {"path": "prep_train_evaluate/designer_other.py"}, token=admin
    )
    assert status == 409 and "not written by the designer" in err["detail"], err
    assert foreign.read_text() == "# someone else's DAG\n"
    status, started = _call(f"{url}/api/run", "POST", {"path": path}, token=admin)
    assert status == 200, started
    state = _wait_run(url, admin, started)
    assert state["state"] == "failed"
    boom = state["steps"]["boom"]
    assert boom["state"] == "failed"
    assert "the rows are bad: 42" in boom["error"]
    assert boom["error_source"] == "airflow"  # Airflow's own log reader, not the local files
    assert boom["log_url"].endswith(
        f"/dags/prep_train_evaluate__designer_boom/runs/{started['run_id']}/tasks/boom"
    )

    # publish: the same PublishedPipeline pipeline.publish() makes, and an endpoint
    status, done = _call(
        f"{url}/api/publish",
        "POST",
        {"path": path, "name": "boom-pipeline", "endpoint": "boom-endpoint"},
        token=admin,
    )
    assert status == 200, done
    ws = Workspace(_workspace_dir=designer["root"] / ".mlpipe")
    published = PublishedPipeline.get(ws, done["id"])
    assert published.name == "boom-pipeline"
    endpoint = PipelineEndpoint.get(ws, name="boom-endpoint")
    assert endpoint.get_pipeline().id == done["id"]


@pytest.mark.airflow_server
@pytest.mark.chromium
def test_browser_three_builtins_and_a_script_connected_saved_run_then_reused(
    designer, playwright_driver
):
    """The issue's scenario end to end: drag three built-in modules and a script step, connect
    them (a DataReference -> Select Columns -> Clean Missing Data -> Split Data -> the script),
    set a parameter, save, run from the page (every step executed), run again (every step
    reused)."""
    from mlpipe_provider.sdk import Workspace, install_builtin_modules

    install_builtin_modules(
        Workspace(_workspace_dir=designer["root"] / ".mlpipe"),
        names=["Select Columns in Dataset", "Clean Missing Data", "Split Data"],
    )
    path = "prep_train_evaluate/built.py"
    steps = ["Select_Columns_in_Dataset", "Clean_Missing_Data", "Split_Data", "summarize"]
    browser, page = _browser(playwright_driver, designer, "admin")
    try:
        page.goto(f"{designer['url']}/?path={path}")
        page.wait_for_selector('[data-testid="palette-module-Split Data"]', timeout=30_000)
        _drag_to_canvas(page, '[data-testid="palette-datastore-workspaceblobstore"]', 380, 140)
        page.wait_for_selector('[data-testid="data-data"]')
        page.fill('[data-testid="field-path_on_datastore"]', "iris/iris.csv")
        for module, x, y in (
            ("Select Columns in Dataset", 780, 140),
            ("Clean Missing Data", 380, 380),
            ("Split Data", 780, 380),
        ):
            _drag_to_canvas(page, f'[data-testid="palette-module-{module}"]', x, y)
            page.wait_for_selector(f'[data-testid="step-{module.replace(" ", "_")}"]')
        page.click('[data-testid="step-Select_Columns_in_Dataset"]')
        page.fill('[data-testid="param-columns"]', "a")
        page.click('[data-testid="step-Split_Data"]')
        page.fill('[data-testid="param-fraction"]', "0.6")
        _drag_to_canvas(page, '[data-testid="palette-script-summarize.py"]', 580, 640)
        page.wait_for_selector('[data-testid="step-summarize"]')
        links = [
            ('[data-testid="source-data"]', "Select_Columns_in_Dataset", "target-dataset"),
            (
                '[data-testid="step-Select_Columns_in_Dataset"] [data-testid="source-results_dataset"]',
                "Clean_Missing_Data",
                "target-dataset",
            ),
            (
                '[data-testid="step-Clean_Missing_Data"] [data-testid="source-cleaned_dataset"]',
                "Split_Data",
                "target-dataset",
            ),
            (
                '[data-testid="step-Split_Data"] [data-testid="source-results_dataset1"]',
                "summarize",
                "target-__new_input__",
            ),
        ]
        for count, (source, step, port) in enumerate(links, start=1):
            _connect(page, source, f'[data-testid="step-{step}"] [data-testid="{port}"]')
            page.wait_for_function(
                f"document.querySelectorAll('.react-flow__edge').length === {count}"
            )
        page.wait_for_selector(".has-problem", state="detached", timeout=30_000)
        page.click('[data-testid="save"]')
        page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.startsWith('saved')",
            timeout=30_000,
        )
        text = (designer["root"] / path).read_text()
        assert "'fraction': 0.6" in text and "'columns': 'a'" in text
        for expect in ("executed", "reused"):
            page.click('[data-testid="run"]')
            page.click('[data-testid="run-start"]')
            page.wait_for_selector(
                '[data-testid="run-state"][data-state="success"]', timeout=240_000
            )
            for step in steps:
                page.wait_for_selector(
                    f'[data-testid="step-{step}"][data-state="{expect}"]', timeout=10_000
                )
        metric = page.locator('[data-testid="step-summarize"] [data-testid="metrics"]')
        assert "summarized_rows" in metric.text_content()
    finally:
        browser.close()
