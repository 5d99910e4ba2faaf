"""Invariants 6 and 7 and the secrets rule, on real runs.

* No shell: arguments full of shell metacharacters reach the script's ``sys.argv`` byte for byte,
  and no command hidden in them runs. A cheap source guard keeps ``shell=True`` and friends out.
* Paths stay inside their datastore: ``..``/absolute paths are refused when compiling, and a
  symlink that leads out of a datastore (an input, an output location, a run-time DataPath value)
  fails the step with a clear error before the script starts.
* Secrets (a blob datastore's account key, the Airflow server password) never reach the DAG file,
  the task logs, XCom, the rendered fields, the output store or the workspace config.

Shell commands in the arguments only ever target a sandbox folder of the test, so a regression
fails the test without damaging the machine.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from conftest import REPO, write_script

from compiler.compile import compile_pipeline
from mlpipe_provider.errors import DatastoreError, PipelineValidationError
from mlpipe_provider.sdk import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Datastore,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
)

ARGV_SCRIPT = """
    import json, os, sys
    with open(os.environ["MLPIPE_TEST_ARGV"], "w", encoding="utf-8") as handle:
        json.dump(sys.argv[1:], handle)
"""

MARK_SCRIPT = """
    import os
    open(os.environ["MLPIPE_TEST_RAN"], "w").write("the script ran")
"""


def airflow_home() -> Path:
    import os

    return Path(os.environ["AIRFLOW_HOME"])


def task_log_text(dag_id: str, run_id: str, capfd: pytest.CaptureFixture[str]) -> str:
    """What the run logged: task log files under $AIRFLOW_HOME/logs (conftest points the log
    folder there) plus the console, where ``dag.test()`` in this process writes task logs."""
    logs = airflow_home() / "logs"
    texts = []
    for path in sorted(logs.rglob("*")):
        if path.is_file() and f"dag_id={dag_id}" in str(path) and run_id in str(path):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    console = capfd.readouterr()
    return "\n".join([*texts, console.out, console.err])


# --- no shell --------------------------------------------------------------------------------


SHELL_PATTERNS = {
    "shell=True": re.compile(r"shell\s*=\s*True"),
    "os.system": re.compile(r"\bos\.system\s*\("),
    "os.popen": re.compile(r"\bos\.popen\s*\("),
    "subprocess.getoutput": re.compile(r"\bget(status)?output\s*\("),
    "create_subprocess_shell": re.compile(r"create_subprocess_shell"),
    "sh -c": re.compile(r"""["'](/bin/)?(ba|z|da)?sh["']\s*,\s*["']-c["']"""),
    "BashOperator": re.compile(r"BashOperator"),
}


def test_no_shell_in_provider_compiler_or_generated_dags() -> None:
    """A cheap guard: nothing that runs pipelines can hand a string to a shell."""
    files = [
        path
        for folder in ("mlpipe_provider", "compiler", "dags")
        for path in sorted((REPO / folder).rglob("*.py"))
    ]
    assert len(files) > 50
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {what}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        for what, pattern in SHELL_PATTERNS.items()
        if pattern.search(line)
    ]
    assert offenders == []
    # the guard itself must be able to fail
    assert SHELL_PATTERNS["shell=True"].search("subprocess.run(cmd, shell = True)")
    assert SHELL_PATTERNS["sh -c"].search('subprocess.run(["/bin/sh", "-c", cmd])')


def test_shell_metacharacters_arrive_unchanged(ws, project, run_dag, monkeypatch):
    sandbox = project / "sandbox"
    sandbox.mkdir()
    canary = sandbox / "canary.txt"
    canary.write_text("still here")
    pwned = sandbox / "pwned"
    argv_file = project / "argv.json"
    monkeypatch.setenv("MLPIPE_TEST_ARGV", str(argv_file))
    write_script(project / "src", "argv.py", ARGV_SCRIPT)
    hostile = [
        f"; rm -rf {sandbox}",
        f"$(touch {pwned}1)",
        f"`touch {pwned}2`",
        f"| touch {pwned}3",
        f"&& touch {pwned}4",
        f"> {pwned}5",
        "'single' \"double\" \\back\\slash",
        "line one\nline two\r\n",
        "*",
        str(sandbox / "*"),
        "$HOME",
        "${HOME}",
        "~",
        "%PATH%",
        "--flag=$(id)",
        "",
        "  padded  ",
        "tab\there",
        "ünïcødé ✓ 🎉",
        "!!",
        "#not a comment",
    ]
    tag = PipelineParameter("tag", f"$(touch {pwned}6)")
    step = PythonScriptStep(
        "argv.py", name="argv", arguments=[*hostile, tag], source_directory="src"
    )
    run_value = f"`touch {pwned}7`; echo $USER"
    dag_run, records = run_dag(Pipeline(ws, [step]), dag_id="shell_args", conf={"tag": run_value})
    assert records["argv"][0] == "success", records
    assert json.loads(argv_file.read_text(encoding="utf-8")) == [*hostile, run_value]
    assert canary.read_text() == "still here"
    assert sorted(p.name for p in sandbox.iterdir()) == ["canary.txt"]


# --- paths stay inside their datastore ---------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("path_on_datastore", "../outside"),
        ("path_on_datastore", "data/../../outside"),
        ("path_on_datastore", "/etc/passwd"),
        ("path_on_datastore", "C:\\Windows"),
        ("path_on_datastore", "\\\\server\\share"),
        ("path_on_compute", "../up"),
        ("path_on_compute", "/abs"),
        ("output_path_on_compute", "../../up"),
        ("data_path_default", "../outside"),
    ],
)
def test_escaping_paths_are_refused_at_compile_time(ws, project, field, value):
    write_script(project / "src", "s.py", "print(1)\n")
    store = ws.get_default_datastore()
    inputs: list = []
    outputs: list = []
    arguments: list = []
    if field == "path_on_datastore":
        inputs = [DataReference(store, data_reference_name="raw", path_on_datastore=value)]
    elif field == "path_on_compute":
        raw = DataReference(store, data_reference_name="raw", path_on_datastore="raw")
        inputs = [raw.as_download(path_on_compute=value)]
    elif field == "output_path_on_compute":
        outputs = [PipelineData("out", output_path_on_compute=value)]
    else:
        param = PipelineParameter("data", DataPath(store, value))
        arguments = [(param, DataPathComputeBinding(mode="mount"))]
    step = PythonScriptStep(
        "s.py",
        name="escaper",
        inputs=inputs,
        outputs=outputs,
        arguments=arguments,
        source_directory="src",
    )
    with pytest.raises(PipelineValidationError) as info:
        compile_pipeline(Pipeline(ws, [step]), "escape", project / "dags")
    message = str(info.value)
    assert "step 'escaper'" in message and repr(value) in message
    assert "'..'" in message or "absolute" in message
    assert not (project / "dags").exists()


@pytest.mark.parametrize("name", ["../up", "a/b", "..", "/abs"])
def test_output_names_that_are_paths_are_refused(name):
    from mlpipe_provider.errors import UserErrorException

    with pytest.raises(UserErrorException, match="output_name"):
        PipelineData("out", output_name=name)
    with pytest.raises(UserErrorException, match="PipelineData name"):
        PipelineData(name)


def test_datastore_upload_and_download_stay_inside(ws, project):
    src = project / "upload"
    src.mkdir()
    (src / "a.txt").write_text("a")
    store = ws.get_default_datastore()
    for target in ("../escape", "/abs", "x/../../escape"):
        with pytest.raises(DatastoreError):
            store.upload(str(src), target_path=target, show_progress=False)
        with pytest.raises(DatastoreError):
            store.download(str(project / "down"), prefix=target, show_progress=False)
    assert not (ws._dir / "datastores" / "escape").exists()
    assert not (project / "escape").exists()


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside every datastore, holding something a step must not read."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text("not yours")
    return folder


def _failed_before_the_script(records: dict, task: str, ran: Path) -> None:
    """The step failed before its script started (hashing its inputs comes first)."""
    assert records[task][0] == "failed", records
    assert not ran.exists(), "the script ran although its data path left the datastore"


def test_symlinked_input_out_of_the_datastore_fails_the_step(
    ws, project, run_dag, outside, monkeypatch, capfd
):
    ran = project / "ran.txt"
    monkeypatch.setenv("MLPIPE_TEST_RAN", str(ran))
    write_script(project / "src", "mark.py", MARK_SCRIPT)
    store = ws.get_default_datastore()
    root = ws._dir / "datastores" / "workspaceblobstore"
    root.mkdir(parents=True, exist_ok=True)
    (root / "innocent").symlink_to(outside, target_is_directory=True)
    raw = DataReference(store, data_reference_name="raw", path_on_datastore="innocent")
    step = PythonScriptStep(
        "mark.py", name="reader", arguments=[raw], inputs=[raw], source_directory="src"
    )
    assert Pipeline(ws, [step]).validate() == []  # lexically fine: only the run can see the link
    dag_run, records = run_dag(Pipeline(ws, [step]), dag_id="symlink_in")
    _failed_before_the_script(records, "reader", ran)
    log = task_log_text("symlink_in", dag_run.run_id, capfd)
    assert "'innocent' resolves outside datastore 'workspaceblobstore' through a symlink" in log


def test_symlinked_output_location_out_of_the_datastore_fails_the_step(
    ws, project, run_dag, outside, monkeypatch, capfd
):
    ran = project / "ran.txt"
    monkeypatch.setenv("MLPIPE_TEST_RAN", str(ran))
    write_script(project / "src", "mark.py", MARK_SCRIPT)
    other_root = project / "other_store"
    other_root.mkdir()
    (other_root / "azureml").symlink_to(outside, target_is_directory=True)  # every run folder
    Datastore.register_local(ws, "otherstore", str(other_root))
    out = PipelineData("model", datastore="otherstore")
    step = PythonScriptStep(
        "mark.py", name="writer", arguments=[out], outputs=[out], source_directory="src"
    )
    dag_run, records = run_dag(Pipeline(ws, [step]), dag_id="symlink_out")
    _failed_before_the_script(records, "writer", ran)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    log = task_log_text("symlink_out", dag_run.run_id, capfd)
    assert "output 'model'" in log and "resolves outside datastore 'otherstore'" in log


def test_data_path_value_given_at_trigger_time_cannot_escape(
    ws, project, run_dag, monkeypatch, capfd
):
    ran = project / "ran.txt"
    monkeypatch.setenv("MLPIPE_TEST_RAN", str(ran))
    write_script(project / "src", "mark.py", MARK_SCRIPT)
    store = ws.get_default_datastore()
    (ws._dir / "datastores" / "workspaceblobstore" / "data").mkdir(parents=True)
    param = PipelineParameter("data", DataPath(store, "data"))
    step = PythonScriptStep(
        "mark.py",
        name="reader",
        arguments=[(param, DataPathComputeBinding(mode="mount"))],
        source_directory="src",
    )
    dag_run, records = run_dag(
        Pipeline(ws, [step]), dag_id="data_path_escape", conf={"data": "../../../etc"}
    )
    _failed_before_the_script(records, "reader", ran)
    assert "'../../../etc' contains '..'" in task_log_text(
        "data_path_escape", dag_run.run_id, capfd
    )


# --- secrets -------------------------------------------------------------------------------------

BLOB_SCRIPT = """
    import os, sys
    from mlpipe_provider.sdk import Datastore, Workspace

    ws = Workspace.from_config()
    blob = Datastore.get(ws, "blobstore")
    print("using", blob, repr(blob), blob.datastore_type, blob.account_name)
    here = os.path.dirname(os.path.abspath(__file__))
    ref = blob.upload(os.path.join(here, "payload"), target_path="staged", show_progress=False)
    print("uploaded", ref, repr(ref))
    count = blob.download(sys.argv[2], prefix="staged", show_progress=False)
    print("downloaded", count, "files to", sys.argv[2])
    print("raw input is", sys.argv[1], os.listdir(sys.argv[1]))
    from mlpipe_provider.sdk import ServicePrincipalAuthentication
    auth = ServicePrincipalAuthentication("tenant", "sp-id", os.environ["MLPIPE_TEST_SP_SECRET"])
    print("authenticating as", auth, repr(auth), vars(auth).keys())
"""


def test_secrets_never_reach_dags_logs_xcom_or_the_store(
    ws, project, run_dag, azurite, capfd, monkeypatch
):
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from azurite import ACCOUNT_KEY, register_blob_datastore
    from sqlalchemy import select

    from mlpipe_provider.config import AirflowServerConfig

    blob = register_blob_datastore(ws, azurite)
    password = f"airflow-pw-{uuid.uuid4().hex}"
    (ws._dir / "airflow-password").write_text(json.dumps({"admin": password}))
    config = ws._config
    config.airflow = AirflowServerConfig(
        url="http://127.0.0.1:9",
        username="admin",
        password_file="airflow-password",
        service_principals={"sp-id": "admin"},
    )
    ws._save(config)
    # a v1 service principal's password: given by the program (here from the environment, as
    # v1's docs do), held by the authentication object only
    sp_secret = f"sp-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("MLPIPE_TEST_SP_SECRET", sp_secret)
    from mlpipe_provider.errors import MlpipeError
    from mlpipe_provider.sdk import ServicePrincipalAuthentication, Workspace

    principal = ServicePrincipalAuthentication("tenant", "sp-id", sp_secret)
    Workspace(_workspace_dir=ws._dir, auth=principal)
    with pytest.raises(MlpipeError, match="cannot reach Airflow") as unreachable:
        principal.get_authentication_header()
    assert sp_secret not in str(unreachable.value) and sp_secret not in repr(principal)
    secrets = {
        "account key": ACCOUNT_KEY,
        "airflow password": password,
        "service principal password": sp_secret,
    }

    # the scan below could fail: both secrets really are on disk, in their credential files
    credential_files = [
        ws._dir
        / json.loads((ws._dir / "config.json").read_text())["datastores"]["blobstore"][
            "credential_file"
        ],
        ws._dir / "airflow-password",
    ]
    on_disk = "".join(path.read_text() for path in credential_files)
    assert ACCOUNT_KEY in on_disk and password in on_disk

    write_script(project / "src", "blob.py", BLOB_SCRIPT)
    write_script(project / "src" / "payload", "rows.csv", "a,b\n1,2\n")
    local_raw = ws._dir / "datastores" / "workspaceblobstore" / "raw"
    local_raw.mkdir(parents=True)
    (local_raw / "in.csv").write_text("x\n1\n")
    raw = DataReference(
        ws.get_default_datastore(), data_reference_name="raw", path_on_datastore="raw"
    )
    copied = PipelineData("copied")
    step = PythonScriptStep(
        "blob.py",
        name="blob step",
        arguments=[raw, copied],
        inputs=[raw],
        outputs=[copied],
        source_directory="src",
    )
    dag_run, records = run_dag(Pipeline(ws, [step]), dag_id="secret_scan")
    assert len(records) == 2, records  # the step and the pipeline's reuse check
    assert all(state == "success" for state, _ in records.values()), (records, capfd.readouterr())
    assert blob.download(str(project / "check"), prefix="staged", show_progress=False) == 1

    places: dict[str, str] = {
        "DAG file": (airflow_home() / "dags" / "secret_scan.py").read_text(),
        "task logs and console": task_log_text("secret_scan", dag_run.run_id, capfd),
    }
    assert "uploaded" in places["task logs and console"]
    assert (
        "ServicePrincipalAuthentication(service_principal_id='sp-id')"
        in places["task logs and console"]
    )
    with create_session() as session:
        xcoms = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == "secret_scan", XComModel.run_id == dag_run.run_id
            )
        ).all()
        assert xcoms, "expected the step's XCom record"
        places["XCom"] = "\n".join(f"{x.key}={x.value!r}" for x in xcoms)
        rendered = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.dag_id == "secret_scan",
                RenderedTaskInstanceFields.run_id == dag_run.run_id,
            )
        ).all()
        places["rendered task fields"] = "\n".join(repr(r.rendered_fields) for r in rendered)
        serialized = session.scalars(
            select(SerializedDagModel).where(SerializedDagModel.dag_id == "secret_scan")
        ).all()
        places["serialized DAG"] = "\n".join(json.dumps(s.data, default=str) for s in serialized)
    skip = {path.resolve() for path in credential_files}
    for path in sorted(project.rglob("*")):  # workspace config, output store, manifests, runs
        if path.is_file() and path.resolve() not in skip:
            places[str(path.relative_to(project))] = path.read_text(errors="replace")
    assert any("/entries/" in name for name in places), sorted(places)  # a reuse manifest
    leaks = [
        f"{what} in {where}"
        for where, text in places.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == []
