"""Environments as v1 programs write them: conda packages, curated and registered environments,
Python version pins.

This machine has no conda, so conda packages go through the conda -> PyPI mapping; the DAG test
installs ``python-graphviz`` (conda's name for PyPI's small, pure-Python ``graphviz``) from PyPI
with uv. Python downloads are turned off (``UV_PYTHON_DOWNLOADS=never``) so a pin this machine
cannot satisfy shows the fallback instead of downloading an interpreter.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime import environments
from mlpipe_provider.runtime.conda_pypi import (
    UnmappableCondaPackage,
    check_conda_packages,
    map_conda_package,
    python_request,
)
from mlpipe_provider.runtime.environments import resolve_environment
from mlpipe_provider.sdk import (
    CondaDependencies,
    Environment,
    Estimator,
    Pipeline,
    PythonScriptStep,
    RunConfiguration,
)


@pytest.fixture(autouse=True)
def _no_conda_no_downloads(monkeypatch):
    monkeypatch.setattr(environments, "find_conda", lambda: None)
    monkeypatch.setenv("UV_PYTHON_DOWNLOADS", "never")
    monkeypatch.delenv("MLPIPE_STRICT_PYTHON", raising=False)
    environments._python_cache.clear()
    yield
    environments.release_env_locks()


# --------------------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("conda", "pypi"),
    [
        ("numpy", "numpy"),
        ("scikit-learn", "scikit-learn"),
        ("numpy=1.2", "numpy==1.2.*"),  # conda's '=' is a prefix match
        ("numpy==1.2", "numpy==1.2"),
        ("numpy 1.2 py38_0", "numpy==1.2.*"),  # build string dropped
        ("numpy=1.2=py38h1234_0", "numpy==1.2.*"),
        ("numpy >=1.2,<2", "numpy>=1.2,<2"),
        ("pandas 1.*", "pandas==1.*"),
        ("pytorch", "torch"),
        ("conda-forge::pytorch>=1.8", "torch>=1.8"),  # channel prefix stripped
        ("py-xgboost=1.3.3", "xgboost==1.3.3.*"),
        ("python-graphviz", "graphviz"),
        ("cudatoolkit=11.3", None),  # a system library the wheels bundle: dropped
        ("mkl", None),
        ("libgcc-ng", None),
        ("pip", None),
    ],
)
def test_conda_specs_map_to_pypi_requirements(conda, pypi):
    mapped = map_conda_package(conda)
    assert mapped.requirement == pypi
    # a note exactly when something changed (the step log lists these)
    assert mapped.substituted == (pypi is None or pypi != conda.replace(" ", ""))


@pytest.mark.parametrize(
    ("conda", "why"),
    [
        ("r-base", "R is not on PyPI"),
        ("r-ggplot2", "R packages"),
        ("nodejs", "Node.js"),
        ("gcc", "compiler"),
        ("numpy=1.2|1.3", "'|'"),
    ],
)
def test_conda_specs_without_pypi_form_are_refused(conda, why):
    with pytest.raises(UnmappableCondaPackage, match=why.replace("|", r"\|")):
        map_conda_package(conda)
    assert [spec for spec, _why in check_conda_packages(["numpy", conda, "python=3.9"])] == [conda]


def test_python_requests_from_conda_specs():
    assert python_request("python=3.8") == "3.8"
    assert python_request("python==3.8.10") == "3.8.10"
    assert python_request("python>=3.8") == ">=3.8"
    assert python_request("python") is None


def test_resolving_without_conda_logs_every_substitution():
    lines: list[str] = []
    resolved = resolve_environment(
        {
            "name": "train-env",
            "dependencies": {
                "conda_packages": ["pip", "py-xgboost=1.3", "cudatoolkit=11.3", "numpy"],
                "pip_packages": ["azureml-defaults", "pyjokes"],
            },
        },
        step_name="train",
        log=lines.append,
    )
    assert resolved.plan is not None
    assert resolved.plan.pip_packages == ("numpy", "pyjokes", "xgboost==1.3.*")
    (line,) = [x for x in lines if "no conda" in x]
    assert "'py-xgboost=1.3' -> 'xgboost==1.3.*'" in line
    assert "'cudatoolkit=11.3' -> 'nothing'" in line
    assert "'numpy' ->" not in line  # same name on PyPI: not a substitution
    assert any("azureml-defaults" in x for x in lines)


# --------------------------------------------------------------------------- the v1 API


def test_conda_dependencies_v1_methods_and_yaml_round_trip(tmp_path):
    cd = CondaDependencies.create(
        conda_packages=["numpy=1.2", "python=3.9"],
        pip_packages=["pyjokes==0.6"],
        pin_sdk_version=False,
    )
    assert cd.get_python_version() == "3.9"  # a conda python pin is the Python version
    assert cd.conda_packages == ["numpy=1.2"]
    cd.add_pip_package("pyjokes==0.8.3")  # v1: replaces the requirement for the same package
    cd.add_channel("pytorch")
    cd.add_conda_package("pytorch")
    cd.set_pip_option("--extra-index-url https://a/")
    cd.set_pip_option("--extra-index-url https://b/")  # same flag: replaced
    assert cd.pip_packages == ["pyjokes==0.8.3"]
    assert cd.pip_options == ["--extra-index-url https://b/"]
    assert cd.conda_channels == ["conda-forge", "pytorch"]
    with pytest.raises(UserErrorException, match="python must not be removed"):
        cd.remove_conda_package("python=3.9")
    with pytest.raises(UserErrorException, match="Invalid package name"):
        cd.add_pip_package("--pre")
    assert cd._conda_dependencies["dependencies"] == [
        "python=3.9",
        "numpy=1.2",
        "pytorch",
        {"pip": ["pyjokes==0.8.3", "--extra-index-url https://b/"]},
    ]
    path = tmp_path / "env.yml"
    assert cd.save(str(path)) == str(path)
    again = CondaDependencies(str(path))
    assert again.serialize_to_string() == cd.serialize_to_string()
    env = Environment.from_conda_specification("from-file", str(path))
    assert env.python.conda_dependencies.conda_packages == ["numpy=1.2", "pytorch"]
    cd.remove_channel("pytorch")
    cd.remove_conda_package("pytorch")
    cd.remove_pip_package("pyjokes")
    cd.remove_pip_option("--extra-index-url")
    assert (cd.conda_packages, cd.pip_packages, cd.pip_options) == (["numpy=1.2"], [], [])
    assert CondaDependencies.merge_requirements(["a>1", "b", "a<3"]) == ["a>1,<3", "b"]

    reqs = tmp_path / "requirements.txt"
    reqs.write_text("pyjokes==0.8.3  # jokes\n\n--extra-index-url https://x/\n")
    env = Environment.from_pip_requirements("reqs", str(reqs))
    assert env.python.conda_dependencies.pip_packages[0] == "pyjokes==0.8.3"

    # v1's common form: packages set on a default RunConfiguration's environment are installed
    runconfig = RunConfiguration()
    assert runconfig.environment.to_spec()["user_managed_dependencies"]  # nothing asked: worker's
    runconfig.environment.python.conda_dependencies = CondaDependencies.create(
        conda_packages=["numpy"]
    )
    assert not runconfig.environment.to_spec()["user_managed_dependencies"]
    runconfig.environment.python.user_managed_dependencies = True  # explicit: honoured
    assert runconfig.environment.to_spec()["user_managed_dependencies"]

    estimator = Estimator(
        source_directory=str(tmp_path), entry_script="t.py", conda_packages=["numpy"]
    )
    assert estimator.environment.python.conda_dependencies.conda_packages == ["numpy"]
    assert not estimator.environment.python.user_managed_dependencies


def test_curated_registered_and_listed_environments(ws):
    sklearn = Environment.get(ws, "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu")
    assert "scikit-learn" in sklearn.python.conda_dependencies.pip_packages
    minimal = Environment.get(ws, "AzureML-Minimal")
    assert environments.plan_environment(minimal.to_spec()) is None  # the worker's interpreter
    minimal.python.conda_dependencies.add_pip_package("pyjokes")  # and packages added count
    assert environments.plan_environment(minimal.to_spec()).pip_packages == ("pyjokes",)
    with pytest.raises(UserErrorException, match=r"unknown curated.*AzureML-Tutorial"):
        Environment.get(ws, "AzureML-No-Such-Env")
    with pytest.raises(UserErrorException, match="not registered"):
        Environment.get(ws, "mine")

    env = Environment("mine")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["pyjokes==0.8.3"])
    env.environment_variables = {"A": "1"}
    assert env.register(ws).version == "1"
    assert env.register(ws).version == "1"  # unchanged: same version
    env.python.conda_dependencies.add_pip_package("pyjokes==0.6.0")
    assert env.register(ws).version == "2"
    assert Environment.get(ws, "mine").python.conda_dependencies.pip_packages == ["pyjokes==0.6.0"]
    first = Environment.get(ws, "mine", version="1")
    assert first.python.conda_dependencies.pip_packages == ["pyjokes==0.8.3"]
    assert first.environment_variables == {"A": "1"}
    listed = Environment.list(ws)
    assert listed["mine"].version == "2" and "AzureML-Tutorial" in listed
    assert ws.environments["mine"].version == "2"

    first.save_to_directory(str(ws._dir.parent / "saved"))
    loaded = Environment.load_from_directory(str(ws._dir.parent / "saved"))
    assert loaded.python.conda_dependencies.pip_packages == ["pyjokes==0.8.3"]
    assert loaded.environment_variables == {"A": "1"} and loaded.name == "mine"
    with pytest.raises(UserErrorException, match="overwrite=True"):
        first.save_to_directory(str(ws._dir.parent / "saved"))


def test_unmappable_conda_package_fails_at_compile_naming_step_env_and_package(ws, project):
    write_script(project / "src", "s.py", "print('never runs')\n")
    env = Environment("r-env")
    env.python.conda_dependencies = CondaDependencies.create(conda_packages=["numpy", "r-base"])
    runconfig = RunConfiguration()
    runconfig.environment = env
    step = PythonScriptStep("s.py", name="analyse", source_directory="src", runconfig=runconfig)
    problems = Pipeline(ws, [step]).validate()
    assert len(problems) == 1, problems
    assert problems[0].startswith("step 'analyse', field 'runconfig.environment.")
    assert "environment 'r-env': conda package 'r-base'" in problems[0]
    assert "R is not on PyPI" in problems[0]


def test_python_pin_uv_cannot_provide_warns_or_fails_in_strict_mode(monkeypatch):
    spec = {"name": "old", "dependencies": {"python_version": "3.9", "pip_packages": ["pyjokes"]}}
    lines: list[str] = []
    resolved = resolve_environment(spec, step_name="train", log=lines.append)
    assert resolved.properties == {
        "mlpipe.python_requested": "3.9",
        "mlpipe.python_used": platform.python_version(),
    }
    assert resolved.plan is not None and resolved.plan.python is None  # the worker's Python
    assert any(x.startswith("WARNING") and "Python 3.9" in x for x in lines)
    with pytest.raises(UserErrorException, match=r"step 'train'.*Python 3\.9.*strict mode"):
        resolve_environment(spec, step_name="train", strict=True)
    # a pin the worker satisfies needs nothing: no environment, the properties say so
    mine = ".".join(platform.python_version_tuple()[:2])
    plain = resolve_environment({"dependencies": {"python_version": mine}})
    assert (
        plain.plan is None and plain.properties["mlpipe.python_used"] == platform.python_version()
    )


# --------------------------------------------------------------------------- a real run

SCRIPT = """
    import json, os, sys
    import graphviz                      # installed from PyPI for conda's python-graphviz
    from mlpipe_provider.sdk import Run
    Run.get_context().log("ok", 1)
    with open(os.environ["MLPIPE_TEST_CALLS"], "a") as out:
        out.write(json.dumps({"graphviz": graphviz.__version__, "prefix": sys.prefix}) + "\\n")
"""


def test_conda_packages_run_from_pypi_and_the_step_is_reused(ws, project, run_dag, monkeypatch):
    calls = project / "calls.jsonl"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    write_script(project / "src", "draw.py", SCRIPT)

    def pipeline():
        runconfig = RunConfiguration(
            conda_dependencies=CondaDependencies.create(
                conda_packages=["conda-forge::python-graphviz=0.20", "mkl"],
                python_version="3.9",  # not on this machine, and downloads are off
            )
        )
        return Pipeline(
            ws,
            [PythonScriptStep("draw.py", name="draw", source_directory="src", runconfig=runconfig)],
        )

    dag_run, records = run_dag(pipeline(), dag_id="v1_conda_env")
    assert str(dag_run.state) == "success", records
    state, record = records["draw"]
    assert state == "success"
    (seen,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert seen["graphviz"].startswith("0.20.")
    env_dir = Path(seen["prefix"])
    manifest = json.loads((env_dir / "mlpipe-env.json").read_text())
    assert manifest["spec"]["pip_packages"] == ["graphviz==0.20.*"]  # mkl dropped
    assert any(p.startswith("graphviz==0.20.") for p in manifest["installed"])
    assert manifest["python"] == platform.python_version()
    assert record["properties"] == {
        "mlpipe.python_requested": "3.9",
        "mlpipe.python_used": platform.python_version(),
    }

    calls.write_text("")
    dag_run, records = run_dag(pipeline(), dag_id="v1_conda_env")
    assert str(dag_run.state) == "success", records
    assert records["draw"][0] == "skipped" and calls.read_text() == ""  # reused


def test_with_conda_the_environment_is_a_conda_build_keyed_and_cached(tmp_path):
    # a stand-in for micromamba: records its arguments and makes the prefix a Python environment
    import sys

    argv_log = tmp_path / "conda-argv.jsonl"
    fake = tmp_path / "micromamba"
    fake.write_text(
        "#!" + sys.executable + "\n"
        "import json, subprocess, sys\n"
        f"open({str(argv_log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "prefix = sys.argv[sys.argv.index('--prefix') + 1]\n"
        f"subprocess.run([{environments.find_uv()!r}, 'venv', '--quiet', '--python', "
        f"{sys.executable!r}, prefix], check=True)\n"
    )
    fake.chmod(0o755)
    spec = {
        "name": "conda-env",
        "dependencies": {
            "conda_packages": ["r-base", "numpy=1.2"],  # fine for conda: no mapping
            "channels": ["conda-forge", "r"],
            "pip_packages": ["pyjokes==0.8.3"],
        },
    }
    resolved = resolve_environment(spec, step_name="s", conda_exe=str(fake))
    plan = resolved.plan
    assert plan is not None and plan.builder == "conda"
    lines: list[str] = []
    env_dir = environments.ensure_environment(
        plan, tmp_path / "ws", step_name="s", log=lines.append
    )
    (argv,) = [json.loads(x) for x in argv_log.read_text().splitlines()]
    assert argv[:2] == ["create", "--yes"] and "--override-channels" in argv
    assert argv[argv.index("--prefix") + 1].startswith(str(tmp_path / "ws" / "envs" / ".build-"))
    assert argv[-3:] == [f"python={platform.python_version()}", "r-base", "numpy=1.2"]
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--channel"] == ["conda-forge", "r"]
    manifest = json.loads((env_dir / "mlpipe-env.json").read_text())
    assert manifest["spec"]["builder"] == "conda"
    assert "pyjokes==0.8.3" in manifest["installed"]  # pip packages go in with uv afterwards
    # the same plan again: built once, reused
    assert environments.ensure_environment(plan, tmp_path / "ws", step_name="s") == env_dir
    assert len(argv_log.read_text().splitlines()) == 1


def test_fingerprint_records_what_runs_without_paths():
    # conda's pytorch runs as PyPI's torch on the worker's Python (3.9 cannot be had here)
    spec = {"dependencies": {"conda_packages": ["pytorch"], "python_version": "3.9"}}
    identity = environments.runtime_identity(spec)
    assert identity == {
        "python": platform.python_version(),
        "implementation": platform.python_implementation().lower(),
        "packages": ["torch"],
    }
    assert environments.runtime_identity({}) is None
    assert environments.runtime_identity({"dependencies": {"pip_packages": ["torch"]}}) == identity


def test_step_run_properties_say_which_python_was_asked_for_and_ran():
    from mlpipe_provider.sdk.experiment import StepRun

    record = {
        "step_run_id": "r1",
        "step_name": "draw",
        "properties": {"mlpipe.python_requested": "3.9", "mlpipe.python_used": "3.11.7"},
    }
    props = StepRun(None, "draw", {"record": record}).get_properties()  # type: ignore[arg-type]
    assert props["mlpipe.python_requested"] == "3.9" and props["mlpipe.python_used"] == "3.11.7"
    assert props["azureml.runsource"] == "azureml.StepRun"
