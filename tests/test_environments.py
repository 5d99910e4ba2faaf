"""Per-step environments: pip packages become a uv-built virtualenv, built once and reused.

The DAG tests install ``pyjokes`` (tiny, pure Python, not in the project venv) and
``packaging==24.0`` (older than the one the project venv has, to show the step's pin wins) from
PyPI through uv, whose cache makes every install after the first one local.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.cli.main import main
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime import environments
from mlpipe_provider.runtime.environments import (
    EnvironmentBuildError,
    ensure_environment,
    plan_environment,
    python_for,
)
from mlpipe_provider.sdk import (
    CondaDependencies,
    Environment,
    Pipeline,
    PythonScriptStep,
    RunConfiguration,
)

JOKES = "pyjokes==0.8.3"

SCRIPT = """
    import importlib.metadata, os, sys
    from mlpipe_provider.sdk import Run   # mlpipe is importable inside the step's environment

    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    import packaging
    Run.get_context().log("ok", 1)
    line = {"step": os.environ["MLPIPE_STEP_NAME"], "prefix": sys.prefix,
            "pyjokes": version("pyjokes"), "packaging": packaging.__version__}
    print("versions:", line)
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write(repr(line) + "\\n")
"""


@pytest.fixture(autouse=True)
def _release_locks():
    yield
    environments.release_env_locks()  # this test process held "in use" locks on its envs


@pytest.fixture
def calls(project, monkeypatch):
    path = project / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(path))
    write_script(project / "src", "show.py", SCRIPT)
    return path


def read_calls(path: Path) -> dict[str, dict]:
    import ast

    lines = (
        [ast.literal_eval(line) for line in path.read_text().splitlines()] if path.exists() else []
    )
    return {line["step"]: line for line in lines}


def env_dirs(ws) -> list[Path]:
    root = ws._dir / "envs"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def step(name: str, packages: list[str] | None, *, allow_reuse: bool = True) -> PythonScriptStep:
    runconfig = None
    if packages is not None:
        runconfig = RunConfiguration(
            conda_dependencies=CondaDependencies.create(pip_packages=packages)
        )
    return PythonScriptStep(
        "show.py",
        name=name,
        source_directory="src",
        runconfig=runconfig,
        allow_reuse=allow_reuse,
    )


def test_env_is_built_once_for_two_steps_and_reused_without_install(
    ws, project, calls, run_dag, monkeypatch
):
    def pipeline():
        return Pipeline(
            ws,
            [
                step("one", [JOKES], allow_reuse=False),
                step("two", [JOKES], allow_reuse=False),
                step("plain", None, allow_reuse=False),
            ],
        )

    dag_run, records = run_dag(pipeline(), dag_id="envs_once")
    assert str(dag_run.state) == "success", records
    seen = read_calls(calls)
    (env,) = env_dirs(ws)  # one build for the two steps with the same spec
    assert seen["one"]["pyjokes"] == seen["two"]["pyjokes"] == "0.8.3"
    assert Path(seen["one"]["prefix"]) == Path(seen["two"]["prefix"]) == env
    # a step without packages runs on the worker's interpreter, which has no pyjokes
    assert seen["plain"]["pyjokes"] is None
    assert Path(seen["plain"]["prefix"]) == Path(sys.prefix)
    assert records["one"][1]["metrics"] == {"ok": 1}
    manifest = json.loads((env / "mlpipe-env.json").read_text())
    assert manifest["spec"]["pip_packages"] == [JOKES]
    assert manifest["hash"] == env.name and manifest["built_for_step"] in ("one", "two")
    assert not list((ws._dir / "envs").glob(".build-*"))

    # second run: the environment exists, so nothing is installed (uv is not even looked up)
    def no_uv():
        raise AssertionError("uv must not run for an existing environment")

    monkeypatch.setattr(environments, "find_uv", no_uv)
    calls.write_text("")
    started = time.monotonic()
    dag_run, records = run_dag(pipeline(), dag_id="envs_once")
    assert str(dag_run.state) == "success", records
    assert time.monotonic() - started < 60
    assert env_dirs(ws) == [env]
    again = json.loads((env / "mlpipe-env.json").read_text())
    assert again["created"] == manifest["created"] and again["last_used"] > manifest["last_used"]
    assert read_calls(calls)["two"]["pyjokes"] == "0.8.3"


def test_changing_packages_reruns_the_step_in_a_new_env_whose_pins_win(ws, project, calls, run_dag):
    worker_packaging = __import__("packaging").__version__
    assert worker_packaging != "24.0"

    def run(packages):
        calls.write_text("")
        dag_run, records = run_dag(Pipeline(ws, [step("s", packages)]), dag_id="envs_change")
        assert str(dag_run.state) == "success", records
        return records, read_calls(calls)

    records, seen = run([JOKES])
    assert records["s"][0] == "success" and seen["s"]["packaging"] == worker_packaging
    records, seen = run([JOKES])
    assert records["s"][0] == "skipped" and seen == {}  # same environment: reused step

    records, seen = run([JOKES, "packaging==24.0"])
    assert records["s"][0] == "success"  # the package list is in the fingerprint
    assert seen["s"]["packaging"] == "24.0"  # the env's own packages come before the worker's
    assert len(env_dirs(ws)) == 2  # a different spec is a different environment
    assert Path(seen["s"]["prefix"]) in env_dirs(ws)


def test_conda_packages_without_pypi_form_fail_with_a_clear_error(monkeypatch):
    # conda packages with a PyPI form are installed from PyPI (tests/test_v1_environments.py);
    # one without is an error naming the step, the environment and the package
    monkeypatch.setattr(environments, "find_conda", lambda: None)
    env = {
        "name": "e",
        "dependencies": {"conda_packages": ["r-base"], "pip_packages": [JOKES]},
    }
    with pytest.raises(UserErrorException) as err:
        plan_environment(env, step_name="train")
    assert str(err.value).startswith(
        "step 'train', environment 'e': conda package 'r-base' has no PyPI equivalent"
    )


def test_spec_normalisation_python_version_and_worker_interpreter(tmp_path, monkeypatch):
    actual = ".".join(map(str, sys.version_info[:2]))
    # no packages, user-managed, or only the Azure ML SDK: the worker's own interpreter
    assert plan_environment({}) is None
    assert plan_environment({"dependencies": {"pip_packages": []}}) is None
    assert (
        plan_environment(
            {"user_managed_dependencies": True, "dependencies": {"conda_packages": ["numpy"]}}
        )
        is None
    )
    assert plan_environment({"dependencies": {"pip_packages": ["azureml-defaults"]}}) is None
    assert python_for(None, None) == sys.executable
    # container backends take their software from the image: nothing is built on the worker
    docker = {"backend": "docker"}
    assert python_for({"dependencies": {"pip_packages": [JOKES]}}, None, compute=docker) == (
        sys.executable
    )

    # a conda YAML's python and pip pins are not conda packages to install
    yml = tmp_path / "env.yml"
    yml.write_text(
        f"dependencies:\n  - python={actual}\n  - pip\n  - pip:\n    - {JOKES}\n    - azureml-defaults\n"
    )
    spec = Environment.from_conda_specification("e", str(yml)).to_spec()
    plan = plan_environment(spec)
    assert plan is not None and plan.pip_packages == (JOKES,)

    # order and duplicates do not change the key; packages, options and name-free spec do
    a = plan_environment({"dependencies": {"pip_packages": ["b", "a", "a"]}})
    b = plan_environment({"name": "other", "dependencies": {"pip_packages": ["a", "b"]}})
    c = plan_environment(
        {"dependencies": {"pip_packages": ["a", "b"], "pip_options": ["--index-url http://x/"]}}
    )
    assert a.key == b.key != c.key
    assert environments._install_argv("uv", Path("/e/bin/python"), c)[-5:] == [
        "--index-url",
        "http://x/",
        "--",
        "a",
        "b",
    ]

    # a Python no uv can give: an error in strict mode (the warning: tests/test_v1_environments.py)
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.setenv("MLPIPE_STRICT_PYTHON", "1")
    with pytest.raises(UserErrorException, match=r"step 'train'.*Python 2\.7.*strict mode"):
        plan_environment(
            {"dependencies": {"pip_packages": [JOKES], "python_version": "2.7"}},
            step_name="train",
        )
    assert plan_environment({"dependencies": {"pip_packages": ["a"], "python_version": actual}})


def test_install_failure_names_step_and_packages_and_leaves_no_env(tmp_path):
    plan = plan_environment(
        {
            "dependencies": {
                "pip_packages": ["mlpipe-surely-no-such-package==1.0"],
                "pip_options": ["--offline"],
            }
        }
    )
    with pytest.raises(EnvironmentBuildError) as err:
        ensure_environment(plan, tmp_path, step_name="train")
    message = str(err.value)
    assert "step 'train'" in message and "mlpipe-surely-no-such-package==1.0" in message
    root = tmp_path / "envs"
    assert [p.name for p in root.iterdir()] == [".locks"]  # no env, no half-built folder


def _plan():
    return plan_environment({"dependencies": {"pip_packages": [JOKES]}})


def test_concurrent_builds_of_one_env_build_it_once(tmp_path):
    # a uv that is slow to start, so the two processes overlap for sure
    slow_uv = tmp_path / "slow-uv"
    slow_uv.write_text(f'#!/bin/sh\nsleep 1\nexec {environments.find_uv()} "$@"\n')
    slow_uv.chmod(0o755)
    code = textwrap.dedent(
        f"""
        from mlpipe_provider.runtime.environments import ensure_environment, plan_environment
        plan = plan_environment({{"dependencies": {{"pip_packages": [{JOKES!r}]}}}})
        print("env", ensure_environment(plan, {str(tmp_path)!r}, step_name="s", log=print))
        """
    )
    env = {**os.environ, "MLPIPE_UV": str(slow_uv)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    text = "\n".join(outputs)
    assert text.count("building environment") == 1, text
    assert text.count("was built meanwhile") == 1, text
    paths = {line.split(" ", 1)[1] for line in text.splitlines() if line.startswith("env ")}
    assert paths == {str(tmp_path / "envs" / _plan().key)}


def test_env_ls_and_gc_keep_envs_in_use_and_remove_old_ones(tmp_path, capsys):
    ws_dir = tmp_path / ".mlpipe"
    env = ensure_environment(_plan(), ws_dir, step_name="s")
    leftover = ws_dir / "envs" / f".build-{_plan().key}-deadbeef"  # a crashed build
    leftover.mkdir()

    assert main(["env", "ls", "--workspace", str(ws_dir)]) == 0
    listing = capsys.readouterr().out
    assert env.name in listing and JOKES in listing and "1 environment," in listing

    manifest_path = env / "mlpipe-env.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["last_used"] = time.time() - 10 * 86400
    manifest_path.write_text(json.dumps(manifest))

    # this process still uses it (holds the shared lock): gc keeps it
    assert main(["env", "gc", "--older-than", "1", "--workspace", str(ws_dir)]) == 0
    assert "1 kept because in use" in capsys.readouterr().out and env.exists()
    environments.release_env_locks()

    assert main(["env", "gc", "--older-than", "30", "--workspace", str(ws_dir)]) == 0
    assert env.exists() and not leftover.exists()  # used 10 days ago: younger than 30
    assert main(["env", "gc", "--older-than", "1", "--dry-run", "--workspace", str(ws_dir)]) == 0
    assert env.exists()
    assert main(["env", "gc", "--older-than", "1", "--workspace", str(ws_dir)]) == 0
    assert "1 environment(s)" in capsys.readouterr().out
    assert not env.exists()
    assert not [p for p in (ws_dir / "envs").iterdir() if p.name != ".locks"]
