"""The files users start a real Airflow from: docker-compose.yaml, Dockerfile, .env.example,
deploy/ (init script, constraints, Helm values). See docs/deploy.md.

The compose file is validated by Debian's docker-compose (v1.29; `.ci/run` installs it) with
`config`, which interpolates and checks it without a Docker engine.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from services import unavailable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy"))

import airflow_init  # noqa: E402
import make_env  # noqa: E402

COMPOSE = REPO / "docker-compose.yaml"
SECRET_VARS = {
    "AIRFLOW_ADMIN_PASSWORD",
    "POSTGRES_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
}
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "airflow-worker-gpu",
}


def locked_version(package: str) -> str:
    """The version uv.lock pins (the one the tests ran with); pyproject.toml holds a range."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (version,) = [p["version"] for p in lock["package"] if p["name"] == package]
    return version


def gpu_queues_of_compiled_dags() -> set[str]:
    """Every queue a committed DAG routes a task to, and every pool its pools file declares."""
    queues = set()
    for path in (REPO / "dags").glob("*.py"):
        queues |= set(re.findall(r"queue='([^']+)'", path.read_text()))
    for path in (REPO / "dags").glob("*.pools.json"):
        queues |= set(json.loads(path.read_text()))
    assert queues, "the committed DAGs should route at least one GPU step"
    return queues


# --- docker-compose.yaml ---------------------------------------------------------------------


def volumes_of(service: dict) -> dict[str, dict]:
    """target -> {type, source, read_only}, from short ("src:dst:ro", docker-compose v1's
    rendering) or long syntax (Compose v2's)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            kind = "bind" if source.startswith(("/", ".")) else "volume"
            volume = {"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]}
        mounts[volume["target"]] = volume
    return mounts


def published_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host ip, published, target) of each port, short or long syntax."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            *host, published, target = port.split("/")[0].split(":")
            ports.append((host[0] if host else "", published, target))
        else:
            ports.append((port.get("host_ip", ""), str(port["published"]), str(port["target"])))
    return ports


def _compose(env_file: Path, extra_env: dict[str, str] | None = None):
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable(
            "compose",
            "docker-compose is not installed (apt-get install docker-compose; .ci/run does)",
        )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DOCKER_HOST": "unix:///nonexistent.sock",  # `config` needs no engine; never reach one
        **(extra_env or {}),
    }
    return subprocess.run(
        [binary, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def env_values(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A .env made by deploy/make_env.py from .env.example, as a user would make it."""
    out = tmp_path_factory.mktemp("compose") / ".env"
    assert make_env.main(["--output", str(out)]) == 0
    values = dict(
        line.split("=", 1)
        for line in out.read_text().splitlines()
        if line and not line.startswith("#")
    )
    return out, values


@pytest.fixture(scope="module")
def compose(env_values) -> dict:
    env_file, _ = env_values
    result = _compose(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_services(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", *AIRFLOW_SERVICES}
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    commands = {
        "airflow-apiserver": ["airflow", "api-server"],
        "airflow-scheduler": ["airflow", "scheduler"],
        "airflow-dag-processor": ["airflow", "dag-processor"],
        "airflow-triggerer": ["airflow", "triggerer"],
    }
    for name, command in commands.items():
        assert services[name]["command"] == command, name
    for name in AIRFLOW_SERVICES:
        service = services[name]
        assert service["image"] == "mlpipe-airflow:0.1.0" and service["build"]["context"] == str(
            REPO
        ), name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
            "postgresql+psycopg2://airflow:"
        )
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres/airflow")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:")
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-apiserver:8080/execution/"
        )
        assert env["MLPIPE_WORKSPACE"] == "/opt/airflow/workspace"
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"] == {
                "condition": "service_completed_successfully"
            }, name
    assert published_ports(services["airflow-apiserver"]) == [("127.0.0.1", "8080", "8080")]


def test_compose_init_migrates_syncs_pools_and_makes_the_workspace(compose):
    init = compose["services"]["airflow-init"]
    script = " ".join(init["command"])
    steps = [
        "airflow db migrate",
        "mlpipe pools sync /opt/airflow/dags",
        "python /opt/mlpipe/deploy/airflow_init.py",
    ]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions), script
    assert "--passwords-file /opt/airflow/auth/passwords.json" in script
    assert "--workspace /opt/airflow/workspace --examples /opt/airflow/examples" in script
    assert init["restart"] == "no"
    assert "airflow-init" not in init.get("depends_on", {})
    # Only the init service sees the admin password; the api-server reads the file it wrote.
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert "AIRFLOW_ADMIN_PASSWORD" not in compose["services"][name]["environment"], name
    auth_file = "/opt/airflow/auth/passwords.json"
    api_env = compose["services"]["airflow-apiserver"]["environment"]
    assert api_env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == auth_file
    api_mounts = volumes_of(compose["services"]["airflow-apiserver"])
    init_mounts = volumes_of(init)
    assert api_mounts["/opt/airflow/auth"]["source"] == "airflow-auth"
    assert init_mounts["/opt/airflow/auth"]["source"] == "airflow-auth"


def test_compose_workers_queues_and_gpu_reservation(compose):
    services = compose["services"]
    cpu = services["airflow-worker"]["command"]
    gpu = services["airflow-worker-gpu"]["command"]
    assert cpu == ["airflow", "celery", "worker", "--queues", "default"]
    assert gpu[:4] == ["airflow", "celery", "worker", "--queues"]
    gpu_queues = set(gpu[4].split(","))
    # `gpu` as asked for targets named so, plus every queue/pool the committed DAGs use: a task
    # on a queue that no worker listens to would stay queued forever.
    assert {"gpu"} | gpu_queues_of_compiled_dags() <= gpu_queues
    assert "default" not in gpu_queues
    devices = services["airflow-worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    for name in AIRFLOW_SERVICES - {"airflow-worker-gpu"}:
        assert "deploy" not in services[name], f"{name} must not reserve GPUs"


def test_compose_mounts_dags_and_examples_as_siblings(compose):
    for name in AIRFLOW_SERVICES:
        mounts = volumes_of(compose["services"][name])
        dags, examples = mounts["/opt/airflow/dags"], mounts["/opt/airflow/examples"]
        assert dags["type"] == examples["type"] == "bind", name
        assert (
            Path(dags["source"]) == REPO / "dags" and Path(examples["source"]) == REPO / "examples"
        )
        assert dags.get("read_only") and examples.get("read_only"), name
        # The compiled DAGs name their sources relative to themselves: ../examples/<x>/src.
        dag_dir = Path(dags["target"])
        assert (dag_dir / "../examples").resolve() == Path(examples["target"]), name
        workspace = mounts["/opt/airflow/workspace"]
        assert workspace["type"] == "volume" and workspace["source"] == "mlpipe-workspace", name
        assert not workspace.get("read_only"), name
    assert {"mlpipe-workspace", "airflow-auth", "postgres-db"} <= set(compose["volumes"])
    source = (REPO / "dags" / "prep_train_evaluate.py").read_text()
    assert "'../examples/prep_train_evaluate/src'" in source


def test_mounted_dag_files_are_readable_by_the_airflow_user():
    """The containers run as uid 50000: a DAG file only its owner can read is silently skipped
    by the DAG processor (no import error) and breaks `mlpipe pools sync` in the init service."""
    unreadable = [
        path.name
        for path in (REPO / "dags").iterdir()
        if path.is_file() and not path.name.startswith(".") and not path.stat().st_mode & 0o004
    ]
    assert not unreadable, f"not world-readable (chmod a+r): {unreadable}"


def test_compose_interpolates_every_secret_from_env(compose, env_values):
    _, values = env_values
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    pg, redis = values["POSTGRES_PASSWORD"], values["REDIS_PASSWORD"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://airflow:{pg}@postgres/airflow"
    )
    assert (
        env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+postgresql://airflow:{pg}@postgres/airflow"
    )
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://:{redis}@redis:6379/0"
    assert env["AIRFLOW__CORE__FERNET_KEY"] == values["AIRFLOW_FERNET_KEY"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == values["AIRFLOW_JWT_SECRET"]
    assert env["AIRFLOW__API__SECRET_KEY"] == values["AIRFLOW_API_SECRET_KEY"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == pg
    assert services["redis"]["command"] == ["redis-server", "--requirepass", redis]
    assert (
        services["airflow-init"]["environment"]["AIRFLOW_ADMIN_PASSWORD"]
        == (values["AIRFLOW_ADMIN_PASSWORD"])
    )


@pytest.mark.compose
def test_compose_file_holds_no_secret_and_refuses_to_start_without_them(tmp_path):
    text = COMPOSE.read_text()
    raw = yaml.safe_load(text)
    secretish = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|_CONN$|BROKER_URL|RESULT_BACKEND|AUTH$")

    def check_env(where: str, env: dict) -> None:
        for key, value in (env or {}).items():
            if key == "<<" or not secretish.search(key):
                continue
            if key.endswith("PASSWORDS_FILE"):
                continue  # a path, not a secret
            assert "${" in str(value), f"{where}: {key} is written inline: {value!r}"

    check_env("x-airflow-env", raw["x-airflow-env"])
    for name, service in raw["services"].items():
        check_env(name, service.get("environment"))
        for part in service.get("command") or []:
            assert not re.search(r"requirepass\s+[^$\s]", str(part)), name
    for var in SECRET_VARS:
        assert re.search(rf"\$\{{{var}:\?[^}}]*\}}", text), f"{var} is not a required ${{VAR:?}}"
    assert not re.search(r"://airflow:(?!\$\{)", text), "a DB password is written inline"
    # Every required variable is documented in .env.example, empty.
    example = (REPO / ".env.example").read_text()
    for var in SECRET_VARS:
        assert re.search(rf"^{var}=$", example, re.M), var
    # And compose refuses to render without them.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose(empty)
    assert result.returncode != 0
    assert "in .env" in result.stderr


def test_env_file_is_git_ignored():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False, capture_output=True
    )
    assert result.returncode == 0, ".env must be in .gitignore"


def test_make_env_fills_every_secret_and_never_overwrites(tmp_path, env_values):
    _, values = env_values
    assert set(values) >= SECRET_VARS
    assert all(len(values[var]) >= 32 for var in SECRET_VARS)
    assert len(base64.urlsafe_b64decode(values["AIRFLOW_FERNET_KEY"])) == 32
    out = tmp_path / ".env"
    assert make_env.main(["--output", str(out)]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    before = out.read_text()
    assert make_env.main(["--output", str(out)]) == 1
    assert out.read_text() == before
    assert make_env.main(["--output", str(out), "--force"]) == 0
    assert out.read_text() != before


# --- Dockerfile and pinned versions -----------------------------------------------------------

DOCKERFILE_INSTRUCTIONS = {"ARG", "FROM", "USER", "COPY", "RUN", "ENV", "WORKDIR", "LABEL"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            word, _, rest = current.strip().partition(" ")
            instructions.append((word, rest))
            current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


def test_dockerfile_parses_and_installs_the_project_pinned():
    instructions = dockerfile_instructions()
    assert {word for word, _ in instructions} <= DOCKERFILE_INSTRUCTIONS
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert froms == ["${AIRFLOW_IMAGE}"]
    assert args["AIRFLOW_IMAGE"] == "apache/airflow:3.3.2-python3.11"
    assert args["AIRFLOW_VERSION"] == locked_version("apache-airflow")
    assert ("USER", "airflow") in instructions
    # Everything copied exists in the repository (and is not excluded by .dockerignore).
    ignored = {
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip()
    }
    for word, rest in instructions:
        if word == "COPY":
            sources = [s for s in rest.split()[:-1] if not s.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), source
                assert source.split("/")[0] not in ignored, source
    (pip,) = [rest for word, rest in instructions if word == "RUN" and "pip install" in rest]
    assert "--constraint /opt/mlpipe/deploy/constraints.txt" in pip
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in pip
    assert '"/opt/mlpipe[azure,celery,postgres]"' in pip
    envs = [rest for word, rest in instructions if word == "ENV"]
    assert "MLPIPE_WORKSPACE=/opt/airflow/workspace" in envs


def test_constraints_are_the_lock_file(tmp_path):
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        pytest.skip("uv is not installed")
    out = tmp_path / "constraints.txt"
    result = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--all-extras"]
        + ["-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]

    committed = (REPO / "deploy" / "constraints.txt").read_text()
    assert pins(out.read_text()) == pins(committed), (
        "deploy/constraints.txt is stale; regenerate it with: uv export --frozen --no-dev "
        "--no-emit-project --no-hashes --all-extras -o deploy/constraints.txt"
    )
    assert f"apache-airflow=={locked_version('apache-airflow')}" in pins(committed)


# --- Helm values ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def helm_values() -> dict:
    return yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())


def test_helm_values_celery_image_and_dags(helm_values):
    v = helm_values
    assert "CeleryExecutor" in v["executor"]
    assert v["airflowVersion"] == locked_version("apache-airflow")
    assert v["defaultAirflowRepository"] and v["defaultAirflowTag"]
    git = v["dags"]["gitSync"]
    assert git["enabled"] is True and git["subPath"] == "dags"
    assert {"name": "MLPIPE_WORKSPACE", "value": "/opt/airflow/workspace"} in v["env"]


def test_helm_values_gpu_worker_set_and_queues(helm_values):
    celery = helm_values["workers"]["celery"]
    assert celery["enableDefault"] is True and celery["queue"] == "default"
    (gpu,) = [s for s in celery["sets"] if s["name"] == "gpu"]
    queues = set(gpu["queue"].split(","))
    assert {"gpu"} | gpu_queues_of_compiled_dags() <= queues
    assert f"airflow celery worker --queues {gpu['queue']}" in " ".join(gpu["args"])
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    assert gpu["nodeSelector"]
    mounts = {m["mountPath"]: m["name"] for m in celery["extraVolumeMounts"]}
    assert mounts["/opt/airflow/workspace"] == "mlpipe-workspace"
    (init,) = celery["extraInitContainers"]
    assert init["args"][:2] == ["python", "/opt/mlpipe/deploy/airflow_init.py"]
    assert "/opt/airflow/dags/repo/examples" in init["args"]


def test_helm_values_sync_pools_and_hold_no_secret(helm_values):
    (sidecar,) = helm_values["dagProcessor"]["extraContainers"]
    assert "mlpipe pools sync /opt/airflow/dags/repo/dags" in " ".join(sidecar["args"])
    assert (
        sidecar["env"][0]["valueFrom"]["secretKeyRef"]["name"]
        == (helm_values["data"]["metadataSecretName"])
    )
    assert helm_values["postgresql"]["enabled"] is False
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert helm_values[key]
    for key in ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey"):
        assert key not in helm_values

    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                if re.search(r"pass(word)?$|secret$|token$", str(key), re.I):
                    assert not isinstance(value, str) or not value, f"{path}.{key} is inline"
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    walk(helm_values)
    args = " ".join(helm_values["createUserJob"]["args"])
    assert '--password "$AIRFLOW_ADMIN_PASSWORD"' in args


# --- deploy/airflow_init.py -------------------------------------------------------------------


def test_init_writes_the_password_file(tmp_path):
    path = tmp_path / "auth" / "passwords.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"viewer": "v"}))
    airflow_init.write_passwords_file(path, "admin", "s3cret")
    assert json.loads(path.read_text()) == {"viewer": "v", "admin": "s3cret"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    airflow_init.write_passwords_file(path, "admin", "changed")
    assert json.loads(path.read_text())["admin"] == "changed"
    with pytest.raises(SystemExit):
        airflow_init.write_passwords_file(path, "admin", "")


def test_init_makes_the_workspace_once(tmp_path):
    workspace = tmp_path / "workspace"
    airflow_init.init_workspace(workspace, REPO / "examples")
    config = json.loads((workspace / "config.json").read_text())
    assert config == json.loads((REPO / "examples" / ".mlpipe" / "config.json").read_text())
    store = workspace / "datastores" / "workspaceblobstore"
    assert (store / "iris" / "iris.csv").read_text().startswith("sepal_length,")
    assert (store / "20newsgroups" / "20news.pkl").stat().st_size > 1000
    assert (workspace / "modules" / "clean_text" / "module.json").exists()
    # A second run keeps an edited config and existing data.
    (workspace / "config.json").write_text('{"workspace_name": "mine", "datastores": {}}')
    (store / "iris" / "iris.csv").write_text("mine\n")
    airflow_init.init_workspace(workspace, REPO / "examples")
    assert json.loads((workspace / "config.json").read_text())["workspace_name"] == "mine"
    assert (store / "iris" / "iris.csv").read_text() == "mine\n"


def test_helm_triggerer_mounts_the_workspace_where_the_workers_do(helm_values):
    """A deferred step's lease wait runs in the triggerer and reads the reuse store."""
    workers = helm_values["workers"]["celery"]
    triggerer = helm_values["triggerer"]
    assert triggerer["extraVolumes"] == workers["extraVolumes"]
    assert triggerer["extraVolumeMounts"] == workers["extraVolumeMounts"]
