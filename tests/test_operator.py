"""The step operator on real Airflow runs (dag.test): failures, timeouts, arguments, data, env.

Successful behaviours share one DAG run (module fixture ``features``); each failure mode gets
its own run because it fails the DAG. Task errors are read from the run's log output, which
``dag.test()`` writes to stdout.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import _DAGS, task_records, write_script

from compiler.naming import task_id_for
from mlpipe_provider.sdk import (
    DataReference,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RunConfiguration,
    Workspace,
)

# Everything a shell would interpret; a step must receive each one as a single, unchanged argument.
SHELL_ARGS = [
    "; rm -rf /",
    "$(whoami)",
    "`id`",
    "|",
    "*",
    "a b",
    "  leading and trailing  ",
    "",
    "'single'",
    '"double"',
    "it's",
    "line one\nline two",
    "tab\there",
    "&& echo pwned > /tmp/x",
    "$HOME ${PATH} %PATH%",
    "~",
    "-c",
    "--flag=value with spaces",
    "héllo wörld ✓ 日本語",
    "\\back\\slash\\",
]

ECHO = """
    import json, os, sys
    outs = [v for k, v in os.environ.items()
            if k.startswith("AZUREML_DATAREFERENCE_") and k.endswith("_echo")]
    assert len(outs) == 1, outs
    os.makedirs(outs[0], exist_ok=True)  # PipelineData(): a path the script creates (v1)
    with open(os.path.join(outs[0], "echo.json"), "w", encoding="utf-8") as handle:
        json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, handle)
"""


def datastore_root(ws: Workspace) -> Path:
    return ws._dir / "datastores" / "workspaceblobstore"


def read_echo(ws: Workspace, record: dict, port: str) -> dict:
    location = record["outputs"][port]
    return json.loads((datastore_root(ws) / location["path"] / "echo.json").read_text("utf-8"))


def echo_step(name: str, store, **kwargs) -> PythonScriptStep:
    out = PipelineData(f"{name}_echo", datastore=store)
    return PythonScriptStep(
        "echo.py",
        name=name,
        outputs=[out, *kwargs.pop("outputs", [])],
        source_directory="src",
        **kwargs,
    )


def run_capturing(run_dag, pipeline, dag_id, conf=None):
    """Run the DAG; returns (dag_run, records, log text)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        dag_run, records = run_dag(pipeline, dag_id=dag_id, conf=conf)
    return dag_run, records, buffer.getvalue()


# --- one shared run for the behaviours of a successful step ---------------------------------


class Features:
    def __init__(self, ws, dag_run, records, log):
        self.ws, self.dag_run, self.records, self.log = ws, dag_run, records, log

    def echo(self, step: str) -> dict:
        state, record = self.records[step]
        assert state == "success", (state, self.log[-5000:])
        return read_echo(self.ws, record, f"{step}_echo")


CONF = {"name": "from conf; $(whoami)", "count": 7, "ratio": 0.5, "flag": True, "mode": "fast"}
ENV_VARS = {"MY_GREETING": "hello world", "MY_TRICKY": 'it\'s "q" $HOME ü'}


@pytest.fixture(scope="module")
def features(airflow_db, tmp_path_factory):
    project = tmp_path_factory.mktemp("features")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        ws = Workspace.from_config()
        store = ws.get_default_datastore()
        write_script(project / "src", "echo.py", ECHO)
        write_script(
            project / "src",
            "metrics.py",
            """
            from mlpipe_provider.sdk import Run
            run = Run.get_context()
            run.log("loss", 0.5)
            run.log("loss", 0.25)
            run.log("accuracy", 0.75)
            run.log_list("curve", [3, 2, 1])
            run.log_row("epochs", epoch=1, acc=0.5)
            run.log_row("epochs", epoch=2, acc=0.75)
            run.log_table("confusion", {"tp": [5, 1], "fp": [2, 0]})
            """,
        )
        raw_dir = datastore_root(ws) / "inputs" / "raw"
        raw_dir.mkdir(parents=True)
        (raw_dir / "file.txt").write_text("raw data")

        shell = echo_step("shell", store, arguments=list(SHELL_ARGS))
        params = echo_step(
            "params",
            store,
            arguments=[
                "--name",
                PipelineParameter("name", "default name"),
                "--count",
                PipelineParameter("count", 1),
                "--ratio",
                PipelineParameter("ratio", 0.1),
                "--flag",
                PipelineParameter("flag", False),
                "--untouched",
                PipelineParameter("untouched", "default value"),
            ],
            params={"mode": PipelineParameter("mode", "slow"), "fixed": "plain; value"},
        )
        raw = DataReference(store, data_reference_name="raw_data", path_on_datastore="inputs/raw")
        extra = PipelineData("extra", datastore=store)
        tokens = echo_step(
            "tokens",
            store,
            arguments=[f"--data={raw}", f"{raw}/file.txt,{raw}", raw, f"--extra={extra}"],
            inputs=[raw],
            outputs=[extra],
        )
        runconfig = RunConfiguration()
        runconfig.environment.environment_variables = dict(ENV_VARS)
        env = echo_step("env", store, runconfig=runconfig)
        metrics = PythonScriptStep("metrics.py", name="metrics", source_directory="src")
        pipeline = Pipeline(ws, [shell, params, tokens, env, metrics])
        assert str(raw) == "$AZUREML_DATAREFERENCE_raw_data"
        dag_run, records, log = run_capturing(
            _run_dag_module, pipeline, dag_id="operator_features", conf=CONF
        )
    return Features(ws, dag_run, records, log)


def _run_dag_module(pipeline, dag_id, conf=None):
    """``run_dag`` for module-scoped fixtures (the conftest fixture is per test)."""
    from airflow.dag_processing.dagbag import DagBag

    from compiler.compile import compile_pipeline

    compiled = compile_pipeline(pipeline, dag_id, _DAGS)
    compiled.write()
    bag = DagBag(dag_folder=str(compiled.path))
    assert not bag.import_errors, bag.import_errors
    dag_run = bag.get_dag(compiled.dag_id).test(run_conf=conf)
    return dag_run, task_records(dag_run)


def test_shared_run_succeeded(features):
    assert str(features.dag_run.state) == "success", features.log[-5000:]
    for step in ("shell", "params", "tokens", "env", "metrics"):
        assert features.records[step][0] == "success"
    assert features.records["mlpipe.plan"][0] == "success"


def test_shell_metacharacters_reach_the_script_unchanged(features):
    assert features.echo("shell")["argv"] == SHELL_ARGS


def test_pipeline_parameters_from_run_conf_reach_arguments_and_params(features):
    echo = features.echo("params")
    assert echo["argv"] == [
        "--name",
        "from conf; $(whoami)",
        "--count",
        "7",
        "--ratio",
        "0.5",
        "--flag",
        "True",
        "--untouched",
        "default value",
    ]
    assert echo["env"]["AML_PARAMETER_mode"] == "fast"
    assert echo["env"]["AML_PARAMETER_fixed"] == "plain; value"


def test_datareference_tokens_inside_arguments_become_paths(features):
    echo = features.echo("tokens")
    raw = str((datastore_root(features.ws) / "inputs" / "raw").resolve())
    extra_location = features.records["tokens"][1]["outputs"]["extra"]
    extra = str((datastore_root(features.ws) / extra_location["path"]).resolve())
    assert echo["argv"] == [f"--data={raw}", f"{raw}/file.txt,{raw}", raw, f"--extra={extra}"]
    assert echo["env"]["AZUREML_DATAREFERENCE_raw_data"] == raw
    assert Path(raw, "file.txt").read_text() == "raw data"


def test_runconfig_environment_variables_reach_the_script(features):
    env = features.echo("env")["env"]
    for key, value in ENV_VARS.items():
        assert env[key] == value
    assert env["MLPIPE_STEP_NAME"] == "env"


def test_logged_metrics_appear_in_the_step_record(features):
    assert features.records["metrics"][1]["metrics"] == {
        "loss": [0.5, 0.25],
        "accuracy": 0.75,
        "curve": [3, 2, 1],
        "epochs": {"epoch": [1, 2], "acc": [0.5, 0.75]},
        "confusion": {"tp": [5, 1], "fp": [2, 0]},
    }


# --- failures -------------------------------------------------------------------------------


def test_failing_script_fails_its_step_and_stops_only_its_downstream(ws, project, run_dag):
    store = ws.get_default_datastore()
    write_script(
        project / "src",
        "fail.py",
        """
        import sys
        for i in range(50):
            print(f"noise line {i}", file=sys.stderr)
        print("ValueError: the real reason", file=sys.stderr)
        sys.exit(3)
        """,
    )
    write_script(project / "src", "ok.py", "print('fine')\n")
    out = PipelineData("fail_out", datastore=store)
    fail = PythonScriptStep("fail.py", name="fail", outputs=[out], source_directory="src")
    after = PythonScriptStep(
        "ok.py", name="after", arguments=[out], inputs=[out], source_directory="src"
    )
    after_after = PythonScriptStep("ok.py", name="after_after", source_directory="src")
    after_after.run_after(after)
    independent = PythonScriptStep("ok.py", name="independent", source_directory="src")

    pipeline = Pipeline(ws, [after_after, independent])
    assert fail in pipeline.steps  # pulled in through the data and run_after chain
    # continue_on_step_failure=True: the independent branch runs whenever dag.test picks it
    # (with v1's default False it would stop if picked after the failure; tested elsewhere)
    dag_run, records, log = run_capturing(
        run_dag, pipeline, "operator_failure", conf={"mlpipe_continue_on_step_failure": True}
    )
    assert str(dag_run.state) == "failed"
    assert records["fail"][0] == "failed"
    for step in ("after", "after_after"):
        assert records[step][0] == "upstream_failed", records
    assert records["independent"][0] == "success"
    assert "step 'fail' failed: fail.py exited with code 3" in log
    assert "ValueError: the real reason" in log
    message = log[log.index("step 'fail' failed") :]
    assert "noise line 49" in message and "noise line 0\n" not in message  # only the tail


def test_max_run_duration_kills_the_script_and_its_children(ws, project, run_dag):
    pid_file = project / "child.pid"
    write_script(
        project / "src",
        "sleepy.py",
        f"""
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(60)
        """,
    )
    runconfig = RunConfiguration()
    runconfig.max_run_duration_seconds = 2
    step = PythonScriptStep("sleepy.py", name="sleepy", runconfig=runconfig, source_directory="src")
    started = time.monotonic()
    dag_run, records, log = run_capturing(run_dag, Pipeline(ws, [step]), "operator_timeout")
    assert time.monotonic() - started < 30
    assert records["sleepy"][0] == "failed"
    assert "step 'sleepy' timed out after 2 s" in log
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), f"child process {child} survived the timeout"


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next((ln for ln in status.splitlines() if ln.startswith("State:")), "")
    return "Z" not in state.split()[1:2]


def test_bad_datareference_paths_fail_with_a_clear_message(ws, project, run_dag):
    store = ws.get_default_datastore()
    marker = project / "ran.txt"
    write_script(project / "src", "read.py", f"open({str(marker)!r}, 'a').write('ran\\n')\n")
    outside = project / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    datastore_root(ws).mkdir(parents=True, exist_ok=True)
    (datastore_root(ws) / "escape").symlink_to(outside, target_is_directory=True)

    missing = DataReference(store, data_reference_name="missing", path_on_datastore="no/such/dir")
    escape = DataReference(
        store, data_reference_name="escaping", path_on_datastore="escape/secret.txt"
    )
    steps = [
        PythonScriptStep(
            "read.py", name="reads_missing", arguments=[missing], source_directory="src"
        ),
        PythonScriptStep(
            "read.py", name="reads_escape", arguments=[escape], source_directory="src"
        ),
    ]
    pipeline = Pipeline(ws, steps)
    assert pipeline.validate() == []  # both paths are well-formed; only running can tell

    # Both steps must get as far as checking their input, so the first failure must not stop
    # the second (v1's continue_on_step_failure=True; the default False is tested elsewhere).
    dag_run, records, log = run_capturing(
        run_dag, pipeline, "operator_bad_inputs", conf={"mlpipe_continue_on_step_failure": True}
    )
    assert str(dag_run.state) == "failed"
    for step in ("reads_missing", "reads_escape"):
        assert records[step][0] == "failed", records  # fingerprinting the input failed
    assert not marker.exists()
    assert (
        "step 'reads_missing', input 'missing': 'no/such/dir' does not exist in datastore "
        "'workspaceblobstore'" in log
    )
    assert (
        "input 'escaping' path_on_datastore 'escape/secret.txt' resolves outside datastore "
        "'workspaceblobstore' through a symlink" in log
    )


# --- generated code is literal-only ---------------------------------------------------------

INJECTIONS = [
    '"); import os; os.system("x")#',
    "'); import os; os.system('x')#",
    '"""; import os; os.system("x"); """',
    "'''; import os; os.system('x'); '''",
    "\\",
    "trailing backslash \\",
    "\\'\\\"",
    "{{ dag_run.conf }}",
    "{{ '{{' }} {% if true %}yes{% endif %}",
    "{ds} {0} %(x)s",
    "line\nbreak\r\nand\ttab",
    "\x1b[31mred\x1b[0m",
]


def test_hostile_names_and_arguments_compile_to_a_clean_dag(ws, project, run_dag):
    store = ws.get_default_datastore()
    source = project / 'src \'"{{ x }}"'
    script_name = "run 'it' {{ x }}.py"
    write_script(source, script_name, ECHO)
    names = [
        'evil"); import os; os.system("x")#',
        "evil''' {{ ds }} \\",
        'evil""" {% raw %}\nsecond line',
    ]
    steps = []
    for index, name in enumerate(names):
        out = PipelineData(f"s{index}_echo", datastore=store)
        steps.append(
            PythonScriptStep(
                script_name,
                name=name,
                arguments=list(INJECTIONS),
                outputs=[out],
                params={"hostile": INJECTIONS[0]},
                source_directory=str(source),
            )
        )
    pipeline = Pipeline(ws, steps, description='"""\n{{ dag }} \\ \'\'\' os.system("x")')
    dag_run, records, log = run_capturing(run_dag, pipeline, "operator_hostile")
    assert str(dag_run.state) == "success", log[-5000:]

    text = (_DAGS / "operator_hostile.py").read_text("utf-8")
    tree = ast.parse(text)
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module)
        assert not (isinstance(node, ast.Name) and node.id == "os"), "os reached the code"
        assert not (isinstance(node, ast.Attribute) and node.attr == "system")
    assert imported == {
        "airflow.sdk",
        "mlpipe_provider.operators.reuse_plan",
        "mlpipe_provider.operators.script",
    }

    for index, name in enumerate(names):
        task_id = task_id_for(name)
        state, record = records[task_id]
        assert state == "success"
        assert record["step_name"] == name
        echo = read_echo(ws, record, f"s{index}_echo")
        assert echo["argv"] == INJECTIONS
        assert echo["env"]["AML_PARAMETER_hostile"] == INJECTIONS[0]
        assert echo["env"]["MLPIPE_STEP_NAME"] == name
    assert not os.path.exists("x")


def test_on_kill_stops_the_step_processes(tmp_path):
    """Airflow calls on_kill when it kills a task; the step's own process group must go too."""
    import threading
    import time as _time

    from mlpipe_provider.errors import StepFailedError
    from mlpipe_provider.operators.script import PythonScriptStepOperator
    from mlpipe_provider.runtime.process import run_process

    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_process(
                [sys.executable, "-c", "import time; time.sleep(60)"],
                cwd=tmp_path,
                env=dict(os.environ),
                log_out=print,
                log_err=print,
                timeout_s=None,
                step_name="sleepy",
            )
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    worker = threading.Thread(target=run)
    started = _time.monotonic()
    worker.start()
    _time.sleep(1)
    op = PythonScriptStepOperator(
        task_id="t", step_name="sleepy", workspace=".", source_directory=".", script_name="x.py"
    )
    op.on_kill()
    worker.join(timeout=20)
    assert not worker.is_alive() and _time.monotonic() - started < 20
    assert errors and isinstance(errors[0], StepFailedError)
