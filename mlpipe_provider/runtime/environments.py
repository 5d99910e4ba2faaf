"""Per-step Python environments: a step's pip packages become a virtualenv, built once and reused.

A step whose environment asks for no packages (or sets ``user_managed_dependencies=True``) runs
on the worker's own interpreter, at no cost. Otherwise the environment is normalised (pip
packages, pip options, the worker's Python) and hashed; the virtualenv for that hash lives at
``<workspace>/envs/<hash>/`` and is created once with ``uv``:

* it is built in a temporary folder beside it and renamed into place only when complete, so a
  half-built environment is never used (a crashed build leaves a ``.build-*`` folder that the next
  build of the same hash, or ``mlpipe env gc``, removes);
* builds of one hash are serialised by an exclusive ``flock`` (``.locks/<hash>.build``): a second
  step asking for the same environment waits, then uses what the first built;
* every process that uses an environment holds a shared ``flock`` on ``.locks/<hash>.use`` until
  it exits (an Airflow task process lives for one task), and ``mlpipe env gc`` deletes only
  environments whose ``use`` lock it can take exclusively without waiting: never one that is
  being built or used;
* the virtualenv sees the worker's packages (mlpipe itself, so scripts can
  ``from mlpipe_provider.sdk import Run``) through a ``.pth`` file that adds the worker's
  site-packages *after* the environment's own, so the step's pinned versions win.

Conda packages make a conda environment where the worker has conda, mamba or micromamba
(``$MLPIPE_CONDA`` or PATH), built, keyed and locked the same way; without one they are installed
from PyPI through the documented mapping in ``conda_pypi`` and the step log lists what was
substituted. A ``python_version`` the worker's Python does not satisfy gets the interpreter uv
finds or downloads for it; when there is none the step runs on the worker's Python with a warning
and run properties saying so, or fails in strict mode (``$MLPIPE_STRICT_PYTHON``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import site
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe_provider.config import atomic_write_text
from mlpipe_provider.errors import StepFailedError, UserErrorException
from mlpipe_provider.humanize import human_size as _human
from mlpipe_provider.runtime import conda_pypi

ENVS_DIR_NAME = "envs"
ENVS_DIR_ENV = "MLPIPE_ENVS_DIR"
UV_ENV = "MLPIPE_UV"
BUILD_TIMEOUT_ENV = "MLPIPE_ENV_BUILD_TIMEOUT"
CONDA_ENV = "MLPIPE_CONDA"
STRICT_PYTHON_ENV = "MLPIPE_STRICT_PYTHON"
PYTHON_DOWNLOADS_ENV = "MLPIPE_PYTHON_DOWNLOADS"
DEFAULT_BUILD_TIMEOUT_S = 3600.0
MANIFEST_NAME = "mlpipe-env.json"
PTH_NAME = "zz_mlpipe_worker.pth"
LAYOUT_VERSION = 1
HASH_CHARS = 20
_HASH_RE = re.compile(rf"^[0-9a-f]{{{HASH_CHARS}}}$")

# Azure ML v1 told users to add these to every environment; mlpipe replaces them (steps import
# ``mlpipe_provider.sdk``), and installing them would pull in the whole retired SDK.
AZUREML_SDK_PACKAGES = frozenset(
    {
        "azureml-defaults",
        "azureml-core",
        "azureml-sdk",
        "azureml-pipeline",
        "azureml-pipeline-core",
        "azureml-pipeline-steps",
        "azureml-train",
        "azureml-train-core",
    }
)
_NAME_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_CONDA_PIP_RE = re.compile(r"^pip\s*(?:(==?|>=|<=|>|<|!=|~=)\s*[0-9][0-9.*]*)?\s*$")

Log = Callable[[str], None]


class EnvironmentBuildError(UserErrorException):
    """A step's environment could not be created (bad package, no network, missing uv)."""


@dataclass(frozen=True)
class EnvPlan:
    """What an environment is made of; ``key`` names its folder.

    ``conda_packages`` (with ``channels``) make it a conda environment built by ``conda_exe``;
    ``python`` (``{"requested", "path", "version"}``) is an interpreter other than the worker's
    that uv found or downloaded for a ``python_version`` pin. Both enter the key.
    """

    pip_packages: tuple[str, ...]
    pip_options: tuple[str, ...]
    worker: dict[str, Any]
    conda_packages: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    python: dict[str, str] | None = None
    conda_exe: str | None = field(default=None, compare=False)

    @property
    def builder(self) -> str:
        return "conda" if self.conda_packages else "uv"

    @property
    def normalised(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "layout": LAYOUT_VERSION,
            "pip_packages": list(self.pip_packages),
            "pip_options": list(self.pip_options),
            "worker": self.worker,
        }
        if self.conda_packages:
            spec.update(
                builder="conda",
                conda_packages=list(self.conda_packages),
                channels=list(self.channels),
            )
        if self.python:
            spec["python"] = dict(self.python)
        return spec

    @property
    def full_key(self) -> str:
        text = json.dumps(self.normalised, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def key(self) -> str:
        return self.full_key[:HASH_CHARS]

    @property
    def python_version(self) -> str:
        """The Python the step runs with in this environment."""
        return (self.python or {}).get("version") or self.worker["python"]


@dataclass
class Resolved:
    """An environment dict resolved on this worker: the plan (None: the worker's interpreter)
    and the run properties that say what was asked and what runs."""

    plan: EnvPlan | None
    properties: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- the worker


def worker_site_dirs() -> list[str]:
    """The worker's site-packages folders (venv, system, user), in the worker's order."""
    dirs: list[str] = []
    candidates = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    for path in candidates:
        if path and os.path.isdir(path) and path not in dirs:
            dirs.append(path)
    return dirs


def worker_identity() -> dict[str, Any]:
    """What an environment depends on besides its packages: the interpreter it links to and the
    worker folders its ``.pth`` adds. A workspace shared by workers of different images therefore
    gets one environment per image instead of one that is broken on all but one of them."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return {
        "implementation": sys.implementation.name,
        "python": platform.python_version(),
        "interpreter": os.path.realpath(base),
        "machine": platform.machine(),
        "site_dirs": worker_site_dirs(),
    }


# --------------------------------------------------------------------------- the spec


def _canonical_name(requirement: str) -> str | None:
    match = _NAME_RE.match(requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def _python_satisfies(op: str | None, wanted: str, actual: str) -> bool:
    if op in (None, "=", "==") and "*" not in wanted:
        # conda's ``python=3.8`` and v1's ``python_version="3.8"`` mean any 3.8.x
        wanted_parts = wanted.rstrip(".").split(".")
        return actual.split(".")[: len(wanted_parts)] == wanted_parts
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pragma: no cover - packaging ships with Airflow
        return True
    spec = f"{'==' if op in (None, '=') else op}{wanted}"
    try:
        return SpecifierSet(spec).contains(actual, prereleases=True)
    except Exception:
        return True


def find_conda() -> str | None:
    """``$MLPIPE_CONDA``, else conda, mamba or micromamba on PATH; None when there is none."""
    override = os.environ.get(CONDA_ENV)
    if override:
        return override
    for name in ("micromamba", "mamba", "conda"):
        found = shutil.which(name)
        if found:
            return found
    return None


def strict_python(ws_config: Any = None) -> bool:
    """``$MLPIPE_STRICT_PYTHON=1``, or ``strict_python: true`` in the workspace config."""
    if os.environ.get(STRICT_PYTHON_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    extra = getattr(ws_config, "model_extra", None) or {}
    return bool(getattr(ws_config, "strict_python", None) or extra.get("strict_python"))


_python_cache: dict[str, tuple[str, str] | None] = {}


def _interpreter_version(path: str) -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            [path, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def find_python(request: str, *, log: Log | None = None) -> tuple[str, str] | None:
    """``(path, version)`` of an interpreter for ``request`` (``3.9``, ``>=3.8``) from uv: one it
    finds on this machine, else a managed Python it downloads (unless downloads are off:
    ``UV_PYTHON_DOWNLOADS=never`` or ``$MLPIPE_PYTHON_DOWNLOADS=0``). None when there is none."""
    import subprocess

    if request in _python_cache:
        return _python_cache[request]
    uv = find_uv()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}

    def find() -> str | None:
        try:
            done = subprocess.run(
                [uv, "python", "find", "--system", "--no-project", request],
                capture_output=True,
                text=True,
                timeout=120,
                env=env,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        path = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        return path if done.returncode == 0 and path else None

    path = find()
    downloads_off = os.environ.get("UV_PYTHON_DOWNLOADS", "") in ("never", "manual") or (
        os.environ.get(PYTHON_DOWNLOADS_ENV, "1").strip().lower() in ("0", "false", "no")
    )
    if path is None and not downloads_off:
        if log:
            log(f"mlpipe: asking uv to download Python {request}")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [uv, "python", "install", request],
                capture_output=True,
                text=True,
                timeout=float(os.environ.get(BUILD_TIMEOUT_ENV) or DEFAULT_BUILD_TIMEOUT_S),
                env=env,
                check=False,
            )
        path = find()
    version = _interpreter_version(path) if path else None
    found = (path, version) if path and version else None
    _python_cache[request] = found
    return found


def resolve_environment(
    environment: dict[str, Any] | None,
    *,
    step_name: str = "?",
    log: Log | None = None,
    strict: bool | None = None,
    conda_exe: str | None = None,
) -> Resolved:
    """Normalise an operator's ``environment`` dict into what this worker builds.

    Conda packages: a conda environment where conda is (``conda_exe``, else ``find_conda()``), else
    PyPI packages through ``conda_pypi`` (each substitution logged). A Python pin the worker's
    interpreter does not satisfy: uv's interpreter for it, else the worker's with a warning (an
    error in strict mode). Raises a ``UserErrorException`` naming the step otherwise.
    """
    emit: Log = log or (lambda _line: None)
    environment = environment or {}
    if environment.get("user_managed_dependencies"):
        return Resolved(None)
    deps = environment.get("dependencies") or {}
    conda = [str(p).strip() for p in deps.get("conda_packages") or [] if str(p).strip()]
    raw_pip = [str(p).strip() for p in deps.get("pip_packages") or [] if str(p).strip()]
    raw_options = [str(p).strip() for p in deps.get("pip_options") or [] if str(p).strip()]
    env_label = (
        f"environment {environment.get('name')!r}" if environment.get("name") else "environment"
    )
    actual = platform.python_version()
    if strict is None:
        strict = strict_python()

    requests: list[str] = []
    if deps.get("python_version"):
        requests.append(str(deps["python_version"]).strip())
    real_conda: list[str] = []
    for package in conda:
        if conda_pypi.is_python(package):
            try:
                wanted = conda_pypi.python_request(package)
            except conda_pypi.UnmappableCondaPackage as exc:
                raise UserErrorException(f"step {step_name!r}, {env_label}: {exc}") from None
            if wanted:
                requests.append(wanted)
            continue
        if _CONDA_PIP_RE.match(package):
            continue  # pip itself: uv installs the pip packages, no pip needed in the env
        if package.startswith("-"):
            raise UserErrorException(
                f"step {step_name!r}, {env_label}: {package!r} is not a conda package spec"
            )
        real_conda.append(package)

    conda_exe = conda_exe or find_conda()
    packages: list[str] = []
    options: list[str] = list(raw_options)
    if real_conda and not conda_exe:
        substituted: list[str] = []
        for package in real_conda:
            try:
                mapped = conda_pypi.map_conda_package(package)
            except conda_pypi.UnmappableCondaPackage as exc:
                raise UserErrorException(
                    f"step {step_name!r}, {env_label}: conda package {exc} and there is no conda "
                    f"on this worker (PATH, or ${CONDA_ENV}); use a pip package instead"
                ) from None
            if mapped.requirement:
                packages.append(mapped.requirement)
            if mapped.note:
                target = mapped.requirement or "nothing"
                substituted.append(f"{mapped.conda!r} -> {target!r} ({mapped.note})")
        emit(
            f"mlpipe: step {step_name!r}: no conda on this worker; installing conda_packages "
            f"{real_conda} from PyPI"
            + (": " + "; ".join(substituted) if substituted else " under the same names")
        )
        real_conda = []

    skipped: list[str] = []
    for entry in raw_pip:
        if entry.startswith("-"):
            options.append(entry)  # a requirements-file option such as --extra-index-url URL
        elif _is_azureml_sdk(entry):
            skipped.append(entry)
        elif entry not in packages:
            packages.append(entry)
    if skipped:
        emit(
            f"mlpipe: step {step_name!r}: not installing {skipped} (the Azure ML SDK; mlpipe "
            "provides what steps import from it)"
        )
    for option in options:
        try:
            shlex.split(option)
        except ValueError as exc:
            raise UserErrorException(
                f"step {step_name!r}, {env_label}: cannot read pip option {option!r}: {exc}"
            ) from None

    properties: dict[str, str] = {}
    python: dict[str, str] | None = None
    unmet = [r for r in requests if not _python_request_satisfied(r, actual)]
    if requests:
        properties["mlpipe.python_requested"] = requests[0]
        properties["mlpipe.python_used"] = actual
    if unmet and not real_conda:  # a conda build installs its own python
        request = unmet[0]
        found = find_python(request, log=emit)
        if found is not None:
            python = {"requested": request, "path": found[0], "version": found[1]}
            properties["mlpipe.python_used"] = found[1]
            emit(
                f"mlpipe: step {step_name!r}: Python {request} asked for; using {found[1]} "
                f"({found[0]}) from uv"
            )
        elif strict:
            raise UserErrorException(
                f"step {step_name!r}, {env_label}: asks for Python {request}, which uv could not "
                f"find or download on this worker (its Python is {actual}), and strict mode "
                f"(${STRICT_PYTHON_ENV} or 'strict_python' in the workspace config) is on"
            )
        else:
            emit(
                f"WARNING mlpipe: step {step_name!r}, {env_label}: asks for Python {request}, "
                f"which uv could not find or download; running on the worker's Python {actual} "
                f"instead (set ${STRICT_PYTHON_ENV}=1 to make this an error)"
            )
    elif real_conda and requests:
        properties["mlpipe.python_used"] = requests[0]  # conda installs what was asked

    if not packages and not python and not real_conda:
        return Resolved(None, properties)
    channels: tuple[str, ...] = ()
    if real_conda:
        channels = tuple(str(c) for c in deps.get("channels") or ["conda-forge"])
        if requests:
            request = requests[0]
            real_conda.insert(
                0, f"python={request}" if request[0].isdigit() else f"python{request}"
            )
            python = {"requested": request, "version": request}  # conda installs what is asked
        else:
            real_conda.insert(0, f"python={actual}")
    plan = EnvPlan(
        tuple(sorted(packages)),
        tuple(options),
        worker_identity(),
        conda_packages=tuple(real_conda),
        channels=channels,
        python=python,
        conda_exe=conda_exe if real_conda else None,
    )
    return Resolved(plan, properties)


def _python_request_satisfied(request: str, actual: str) -> bool:
    match = re.match(r"^(==|>=|<=|!=|~=|>|<|=)?\s*(.+)$", request)
    op, wanted = (match.group(1), match.group(2)) if match else (None, request)
    return _python_satisfies(op, wanted, actual)


def _is_azureml_sdk(requirement: str) -> bool:
    name = _canonical_name(requirement) or ""
    return name in AZUREML_SDK_PACKAGES or name.startswith("azureml-")


def plan_environment(
    environment: dict[str, Any] | None, *, step_name: str = "?", log: Log | None = None
) -> EnvPlan | None:
    """The plan of ``resolve_environment``; ``None`` means the worker's own interpreter."""
    return resolve_environment(environment, step_name=step_name, log=log).plan


# --------------------------------------------------------------------------- folders and locks


def envs_root(workspace_dir: Path | str) -> Path:
    """Where environments live: ``$MLPIPE_ENVS_DIR`` or ``<workspace>/envs``."""
    override = os.environ.get(ENVS_DIR_ENV)
    return Path(override).resolve() if override else Path(workspace_dir).resolve() / ENVS_DIR_NAME


def env_python(env_dir: Path) -> Path:
    return env_dir / "bin" / "python"


def _lock_path(root: Path, key: str, kind: str) -> Path:
    locks = root / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    return locks / f"{key}.{kind}"


@contextlib.contextmanager
def _flock(path: Path, mode: int, *, blocking: bool = True) -> Iterator[bool]:
    """Hold ``flock(mode)`` on ``path``; yields False (holding nothing) if non-blocking and busy."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, mode | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_held_lock = threading.Lock()
_held: dict[str, int] = {}  # lock file path -> fd holding a shared "in use" lock


def _hold_in_use(root: Path, key: str) -> None:
    """Take (once per process) a shared lock saying "this process uses env ``key``".

    It is released when the process exits; gc never deletes an environment someone holds.
    Taking it blocks only while gc holds it exclusively, which is the moment of a rename.
    """
    path = str(_lock_path(root, key, "use"))
    with _held_lock:
        if path in _held:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        _held[path] = fd


def release_env_locks() -> None:
    """Drop this process's "in use" locks (for long-lived processes and tests)."""
    with _held_lock:
        for fd in _held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        _held.clear()


# --------------------------------------------------------------------------- manifest


def read_manifest(env_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((env_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_manifest(env_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(
        env_dir / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    )


def _is_ready(env_dir: Path, plan: EnvPlan) -> bool:
    manifest = read_manifest(env_dir)
    return bool(
        manifest
        and manifest.get("key") == plan.full_key
        and os.access(env_python(env_dir), os.X_OK)
    )


def _touch(env_dir: Path) -> None:
    manifest = read_manifest(env_dir)
    if manifest is None:
        return
    manifest["last_used"] = time.time()
    with contextlib.suppress(OSError):  # a read-only workspace still runs the step
        _write_manifest(env_dir, manifest)


# --------------------------------------------------------------------------- building


def find_uv() -> str:
    """``$MLPIPE_UV``, the ``uv`` Python package's binary, or ``uv`` on PATH."""
    override = os.environ.get(UV_ENV)
    if override:
        return override
    try:
        from uv import find_uv_bin  # type: ignore[import-not-found]

        return find_uv_bin()
    except Exception:
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise EnvironmentBuildError(
        "uv is needed to build step environments and was not found on this worker "
        f"(install it with `pip install uv`, or set ${UV_ENV})"
    )


def _site_packages(env_dir: Path) -> Path:
    found = sorted((env_dir / "lib").glob("python*/site-packages"))
    if not found:
        raise EnvironmentBuildError(f"{env_dir}: no lib/python*/site-packages after `uv venv`")
    return found[0]


def _pth_text(site_dirs: list[str]) -> str:
    # ``site.addsitedir`` appends the folder and runs its own .pth files, so an editable install
    # of mlpipe in the worker's venv is found as well; appending keeps the env's packages first.
    lines = ["# mlpipe: the worker's packages, after this environment's own"]
    lines += [f"import site; site.addsitedir({d!r})" for d in site_dirs]
    return "\n".join(lines) + "\n"


def _run_tool(argv: list[str], *, cwd: Path, step_name: str, what: str, log: Log) -> None:
    from mlpipe_provider.runtime.process import run_process

    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
    timeout = float(os.environ.get(BUILD_TIMEOUT_ENV) or DEFAULT_BUILD_TIMEOUT_S)
    run_process(
        argv,
        cwd=cwd,
        env=env,
        log_out=lambda line: log(f"uv: {line}"),
        log_err=lambda line: log(f"uv: {line}"),
        timeout_s=timeout,
        step_name=step_name,
        label=what,
    )


def _install_argv(uv: str, python: Path, plan: EnvPlan) -> list[str]:
    argv = [uv, "pip", "install", "--python", str(python)]
    for option in plan.pip_options:
        argv += shlex.split(option)
    return [*argv, "--", *plan.pip_packages]


def _same_minor(a: str, b: str) -> bool:
    return a.split(".")[:2] == b.split(".")[:2]


def _freeze(uv: str, python: Path) -> list[str]:
    """The environment's installed packages (``name==version``), for its manifest."""
    import subprocess

    try:
        done = subprocess.run(
            [uv, "pip", "freeze", "--python", str(python)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(line for line in done.stdout.splitlines() if line and not line.startswith("#"))


def _create_conda(plan: EnvPlan, prefix: Path, *, root: Path, step_name: str, log: Log) -> None:
    """``conda create`` (or mamba/micromamba, same arguments) of the plan's packages at prefix."""
    exe = plan.conda_exe or find_conda()
    if not exe:
        raise EnvironmentBuildError(
            f"step {step_name!r}: its environment needs conda, and none was found on this worker"
        )
    argv = [exe, "create", "--yes", "--prefix", str(prefix), "--override-channels"]
    for channel in plan.channels:
        argv += ["--channel", channel]
    _run_tool(
        [*argv, *plan.conda_packages],
        cwd=root,
        step_name=step_name,
        what="conda create",
        log=log,
    )


def _build(root: Path, plan: EnvPlan, *, step_name: str, log: Log) -> None:
    """Build ``plan`` into a temp folder and rename it to ``root/key``; caller holds the build lock."""
    for stale in root.glob(f".build-{plan.key}-*"):  # a crashed build of this hash
        shutil.rmtree(stale, ignore_errors=True)
    final = root / plan.key
    if final.exists():  # incomplete or from another layout: never used, replaced
        trash = root / f".trash-{plan.key}-{uuid.uuid4().hex[:8]}"
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    tmp = root / f".build-{plan.key}-{uuid.uuid4().hex[:8]}"
    uv = find_uv()
    started = time.monotonic()
    log(
        f"mlpipe: step {step_name!r}: building environment {plan.key} with "
        + (f"conda packages {list(plan.conda_packages)} and " if plan.conda_packages else "")
        + f"{list(plan.pip_packages)}"
        + (f" (pip options {list(plan.pip_options)})" if plan.pip_options else "")
    )
    try:
        try:
            if plan.builder == "conda":
                _create_conda(plan, tmp, root=root, step_name=step_name, log=log)
            else:
                interpreter = (plan.python or {}).get("path") or sys.executable
                _run_tool(
                    [
                        uv,
                        "venv",
                        "--quiet",
                        "--python",
                        interpreter,
                        "--relocatable",
                        "--no-project",
                        "--no-python-downloads",
                        str(tmp),
                    ],
                    cwd=root,
                    step_name=step_name,
                    what="uv venv",
                    log=log,
                )
            if plan.pip_packages:
                _run_tool(
                    _install_argv(uv, env_python(tmp), plan),
                    cwd=root,
                    step_name=step_name,
                    what="uv pip install",
                    log=log,
                )
        except StepFailedError as exc:
            raise EnvironmentBuildError(
                f"step {step_name!r}: could not build its environment with pip packages "
                f"{list(plan.pip_packages)}"
                + (f" and pip options {list(plan.pip_options)}" if plan.pip_options else "")
                + f": {exc}"
            ) from None
        except OSError as exc:
            raise EnvironmentBuildError(
                f"step {step_name!r}: could not run uv ({uv}) to build its environment with pip "
                f"packages {list(plan.pip_packages)}: {exc}"
            ) from None
        # after installing, so uv resolves the step's packages on their own. Only an
        # interpreter of the worker's Python minor version can load the worker's packages.
        actual = _interpreter_version(str(env_python(tmp))) or plan.python_version
        if _same_minor(actual, plan.worker["python"]):
            (_site_packages(tmp) / PTH_NAME).write_text(_pth_text(plan.worker["site_dirs"]))
        else:
            log(
                f"mlpipe: step {step_name!r}: Python {actual} cannot load the "
                f"worker's packages (Python {plan.worker['python']}); mlpipe_provider.sdk is not "
                "importable in this environment unless its packages provide it"
            )
        installed = _freeze(uv, env_python(tmp))
        now = time.time()
        _write_manifest(
            tmp,
            {
                "key": plan.full_key,
                "hash": plan.key,
                "spec": plan.normalised,
                "created": now,
                "last_used": now,
                "build_s": round(time.monotonic() - started, 3),
                "built_for_step": step_name,
                "python": actual,
                "installed": installed,
            },
        )
        os.rename(tmp, final)  # atomic: the env appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(
        f"mlpipe: step {step_name!r}: built environment {plan.key} in "
        f"{time.monotonic() - started:.1f} s at {final}"
    )


def ensure_environment(
    plan: EnvPlan, workspace_dir: Path | str, *, step_name: str = "?", log: Log | None = None
) -> Path:
    """The folder of ``plan``'s environment, built now if it does not exist yet."""
    log = log or (lambda _line: None)
    root = envs_root(workspace_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentBuildError(
            f"step {step_name!r}: cannot create the environments folder {root} ({exc}); make it "
            f"writable or point ${ENVS_DIR_ENV} at a writable folder"
        ) from None
    final = root / plan.key
    _hold_in_use(root, plan.key)
    if not _is_ready(final, plan):
        with _flock(_lock_path(root, plan.key, "build"), fcntl.LOCK_EX):
            if not _is_ready(final, plan):  # the step we waited for may have built it
                _build(root, plan, step_name=step_name, log=log)
            else:
                log(f"mlpipe: step {step_name!r}: environment {plan.key} was built meanwhile")
    else:
        log(f"mlpipe: step {step_name!r}: reusing environment {plan.key} ({final})")
    _touch(final)
    return final


def python_for(
    environment: dict[str, Any] | None,
    ws: Any,
    *,
    step_name: str = "?",
    log: Any = None,
    compute: dict[str, Any] | None = None,
    properties: dict[str, str] | None = None,
) -> str:
    """The interpreter a step runs with: the worker's, or its environment's (built if needed).

    ``ws`` is the ``StepWorkspace`` (its ``directory`` holds ``envs/``, its ``config`` may turn
    on ``strict_python``); ``log`` is a logger or a callable taking one string; ``properties``,
    if given, receives the run properties saying which Python was asked for and which runs.
    Only the local backend builds environments: for a container backend (``compute["backend"]``
    docker or kubernetes) the image provides the software, and this returns the worker's
    interpreter for that backend to replace with the image's.
    """
    if (compute or {}).get("backend", "local") != "local":
        return sys.executable
    emit: Log = (log.info if hasattr(log, "info") else log) or (lambda _line: None)
    if hasattr(log, "warning"):
        info = emit

        def emit(line: str) -> None:
            if line.startswith("WARNING "):
                log.warning("%s", line.removeprefix("WARNING "))
            else:
                info(line)

    strict = strict_python(getattr(ws, "config", None))
    resolved = resolve_environment(environment, step_name=step_name, log=emit, strict=strict)
    if properties is not None:
        properties.update(resolved.properties)
    if resolved.plan is None:
        return sys.executable
    env_dir = ensure_environment(resolved.plan, ws.directory, step_name=step_name, log=emit)
    return str(env_python(env_dir))


def runtime_identity(environment: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the fingerprint records about a local step's environment on this worker: the
    packages actually installed for it (the PyPI substitutes of conda packages, or the conda
    build) and the Python version that runs. No paths, so workers that share a store still
    share reuse. None when the step runs on the worker's interpreter with nothing asked of it."""
    try:
        resolved = resolve_environment(environment, strict=False)
    except UserErrorException:
        return None  # the step itself fails with the error; nothing is stored for it
    plan = resolved.plan
    if plan is None:
        return (
            {"python": resolved.properties["mlpipe.python_used"]} if resolved.properties else None
        )
    identity: dict[str, Any] = {
        "python": plan.python_version,
        "implementation": plan.worker["implementation"],
        "packages": list(plan.pip_packages),
    }
    if plan.builder == "conda":
        identity["conda"] = {"packages": list(plan.conda_packages), "channels": list(plan.channels)}
    return identity


# --------------------------------------------------------------------------- listing and gc


def _tree_size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def list_environments(workspace_dir: Path | str) -> list[dict[str, Any]]:
    """Complete environments, newest use first: hash, packages, size, created, last_used, path."""
    root = envs_root(workspace_dir)
    found: list[dict[str, Any]] = []
    if not root.is_dir():
        return found
    for folder in root.iterdir():
        if not _HASH_RE.match(folder.name) or not folder.is_dir():
            continue
        manifest = read_manifest(folder) or {}
        spec = manifest.get("spec") or {}
        found.append(
            {
                "hash": folder.name,
                "packages": [*spec.get("conda_packages", []), *spec.get("pip_packages", [])],
                "pip_options": spec.get("pip_options", []),
                "python": (spec.get("worker") or {}).get("python"),
                "size": _tree_size(folder),
                "created": manifest.get("created"),
                "last_used": manifest.get("last_used") or manifest.get("created") or 0,
                "path": str(folder),
                "complete": bool(manifest),
            }
        )
    return sorted(found, key=lambda e: e["last_used"], reverse=True)


def collect_environments(
    workspace_dir: Path | str, older_than_s: float, *, dry_run: bool = False, log: Log = print
) -> dict[str, int]:
    """Delete environments not used for ``older_than_s`` seconds, and leftovers of crashed builds.

    An environment that a process is using or building (its ``use`` lock is held) is kept. The
    deletion renames the folder away first, under the exclusive lock, so no step ever starts
    on a half-deleted environment: it sees the environment or rebuilds it.
    """
    root = envs_root(workspace_dir)
    counts = {"deleted": 0, "freed": 0, "in_use": 0, "leftovers": 0}
    if not root.is_dir():
        return counts
    cutoff = time.time() - older_than_s
    verb = "would delete" if dry_run else "deleting"
    for env in list_environments(workspace_dir):
        key = env["hash"]
        trash: Path | None = None
        with _flock(_lock_path(root, key, "use"), fcntl.LOCK_EX, blocking=False) as got:
            if not got:
                counts["in_use"] += 1
                log(f"keeping environment {key} {env['packages']}: in use or being built")
                continue
            manifest = read_manifest(Path(env["path"])) or {}
            if (manifest.get("last_used") or manifest.get("created") or 0) >= cutoff:
                continue
            log(f"{verb} environment {key} {env['packages']} ({_human(env['size'])})")
            counts["deleted"] += 1
            counts["freed"] += env["size"]
            if not dry_run:
                trash = root / f".trash-{key}-{uuid.uuid4().hex[:8]}"
                os.rename(env["path"], trash)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    for leftover in sorted(root.glob(".build-*")) + sorted(root.glob(".trash-*")):
        key = leftover.name.split("-")[1]
        with _flock(_lock_path(root, key, "build"), fcntl.LOCK_EX, blocking=False) as got:
            if not got:
                continue  # being built right now
            log(f"{verb} leftover {leftover.name}")
            counts["leftovers"] += 1
            if not dry_run:
                shutil.rmtree(leftover, ignore_errors=True)
    return counts
