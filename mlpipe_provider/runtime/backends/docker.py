"""The ``docker`` backend: each process of a step runs in its own container, through the Docker
provider's ``DockerOperator`` (executed inside the step's task, with its context).

What a container gets (see docs/backends.md):

* the image: the step's ``Environment.docker.base_image`` or the target's ``image``
  (``images.effective_image``); it must already be on the engine unless the target sets
  ``"pull": "missing"`` or ``"always"``;
* the argument list, never a shell: the entrypoint is the image's Python (the target's ``python``,
  default ``python3``) and the command is ``-u SCRIPT ARGS...`` exactly as the local backend runs it;
* bind mounts at the host's own absolute paths, so arguments and ``AZUREML_DATAREFERENCE_*`` need
  no rewriting: the source folder and every input read-only, the run folder and every output
  read-write; the working directory is the source folder;
* mlpipe itself, read-only: the ``mlpipe_provider`` package at ``/opt/mlpipe/lib`` (on
  PYTHONPATH), so ``from mlpipe_provider.sdk import Run`` works on a bare image (the SDK
  namespace imports lazily: ``Run`` needs only the standard library); with
  ``"worker_packages": true`` also the worker's site-packages at ``/opt/mlpipe/worker-site/N``,
  appended *after* the image's own packages by ``container_boot/sitecustomize.py``;
* the step's environment without the worker's host-only variables (PATH, HOME, VIRTUAL_ENV,
  PYTHONPATH, ...): mlpipe's variables, the rank variables and the user's declared ones;
* no network (``network_mode="none"``) unless the target sets ``"network"``; the ranks of a
  distributed step share one network namespace (a holder container's), so MASTER_ADDR=127.0.0.1
  works between them;
* for a GPU target, one leased GPU per process as a ``DeviceRequest`` (device ids from the same
  per-machine lease the local backend uses, so concurrent steps get distinct GPUs); processes
  beyond a node's GPUs share that node's leased GPUs round-robin;
* the worker's uid:gid (the target's ``user`` overrides), so outputs belong to the worker.

A non-zero exit raises ``StepFailedError`` naming the step with the tail of the container's
output; the step's timeout stops its containers; every container is removed whatever happens.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import StepFailedError, UserErrorException
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.images import (
    docker_url,
    effective_image,
    is_azureml_default_image,
    pull_policy,
)
from mlpipe_provider.runtime.cancel import stoppable
from mlpipe_provider.runtime.distributed import device_for_rank, gpus_held
from mlpipe_provider.runtime.process import STDERR_TAIL_LINES, ProcessResult

CONTAINER_ROOT = "/opt/mlpipe"
PACKAGE_PARENT = f"{CONTAINER_ROOT}/lib"  # holds the mounted mlpipe_provider package
BOOT_DIR = f"{PACKAGE_PARENT}/mlpipe_provider/runtime/backends/container_boot"
WORKER_SITE_ROOT = f"{CONTAINER_ROOT}/worker-site"
DEFAULT_PYTHON = "python3"
DEFAULT_NETWORK = "none"
STOP_GRACE_S = 5
LABEL_PREFIX = "io.mlpipe"

# Variables of the worker's own process that mean nothing (or harm) inside an image.
HOST_ONLY_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "VIRTUAL_ENV",
        "VIRTUAL_ENV_PROMPT",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONUSERBASE",
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "TMPDIR",
        "PWD",
        "OLDPWD",
        "SHELL",
        "USER",
        "LOGNAME",
        "HOSTNAME",
        "TERM",
        "CUDA_VISIBLE_DEVICES",  # the device request decides what the container sees
    }
)
# Rank variables: always passed (the local backend sets them on every process).
STEP_VARIABLES = frozenset(
    {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "NODE_RANK",
        "GROUP_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "NODE_COUNT",
        "TF_CONFIG",
        "PYTHONUNBUFFERED",
    }
)
_STATUS_RE = re.compile(r"['\"]StatusCode['\"]:\s*(-?\d+)")


@dataclass(frozen=True)
class DockerSettings:
    """A docker target's settings (the compiled ``compute`` dict) with the defaults applied."""

    image: str
    url: str
    network: str
    pull: str
    python: str
    user: str | None
    shm_size: int | None
    mem_limit: Any
    worker_packages: bool
    docker_conn_id: str | None
    gpus: int

    @classmethod
    def of(cls, op: Any) -> DockerSettings:
        compute = op.compute or {}
        environment = getattr(op, "environment", None) or {}
        image = effective_image(compute, environment)
        if not image:
            raise UserErrorException(
                f"step {op.step_name!r}: compute target {compute.get('name')!r} uses the docker "
                'backend but no image is named: set "image" on the target in .mlpipe/config.json '
                "or Environment.docker.base_image on the step"
            )
        if is_azureml_default_image(image):
            op.log.warning(
                'mlpipe: step %r runs in Azure ML\'s default image %r; set "image" on compute '
                "target %r to use your own",
                op.step_name,
                image,
                compute.get("name"),
            )
        try:
            pull = pull_policy(compute)
        except ValueError as exc:
            raise UserErrorException(
                f"step {op.step_name!r}, compute target {compute.get('name')!r}: {exc}"
            ) from None
        network = compute.get("network", DEFAULT_NETWORK)
        if network is True:
            network = "bridge"
        elif network in (False, None, ""):
            network = DEFAULT_NETWORK
        shm = compute.get("shm_size")
        if isinstance(shm, str):
            from docker.utils import parse_bytes

            shm = parse_bytes(shm)
        user = compute.get("user")
        if user is None and hasattr(os, "getuid"):
            user = f"{os.getuid()}:{os.getgid()}"
        return cls(
            image=image,
            url=docker_url(compute),
            network=str(network),
            pull=pull,
            python=str(compute.get("python") or DEFAULT_PYTHON),
            user=None if user in (None, "") else str(user),
            shm_size=shm,
            mem_limit=compute.get("mem_limit"),
            worker_packages=bool(compute.get("worker_packages", False)),
            docker_conn_id=compute.get("docker_conn_id"),
            gpus=int(compute.get("gpus") or 0),
        )


# --------------------------------------------------------------------------- what a container gets


def container_environment(env: dict[str, str], declared: dict[str, Any]) -> dict[str, str]:
    """The command's environment without what only means something on the worker.

    Kept: the user's declared variables, the rank variables, and whatever mlpipe set for this
    run (MLPIPE_*, AZUREML_DATAREFERENCE_*, AML_PARAMETER_*, ...): every variable whose value the
    worker's own environment does not have. The worker's variables (even MLPIPE_* ones such as
    MLPIPE_WORKSPACE, a worker path) stay on the worker.
    """
    host = os.environ
    out: dict[str, str] = {}
    for key, value in env.items():
        if (
            key in declared
            or key in STEP_VARIABLES
            or (key not in HOST_ONLY_VARIABLES and host.get(key) != value)
        ):
            out[key] = value
    return out


def _mlpipe_package_dir() -> Path:
    import mlpipe_provider

    return Path(mlpipe_provider.__file__).resolve().parent


def _worker_site_dirs() -> list[str]:
    from mlpipe_provider.runtime.environments import worker_site_dirs

    return worker_site_dirs()


def container_mounts(launch: Launch, settings: DockerSettings) -> tuple[list[Any], list[str]]:
    """``(mounts, worker site folders as seen in the container)``.

    Step paths are mounted at the same absolute paths as on the worker; a read-write path
    already inside another read-write one (outputs inside the run folder) is not mounted twice.
    """
    from docker.types import Mount

    mounts: list[Mount] = []
    targets: set[str] = set()
    writable: list[str] = []

    def add(path: str | os.PathLike, read_only: bool, target: str | None = None) -> None:
        source = os.path.abspath(os.fspath(path))
        target = target or source
        if target in targets:
            return
        if not read_only and any(target.startswith(w.rstrip("/") + "/") for w in writable):
            return
        targets.add(target)
        if not read_only:
            writable.append(target)
        mounts.append(Mount(target=target, source=source, type="bind", read_only=read_only))

    if launch.run_folder is not None:
        add(launch.run_folder, read_only=False)
    for path in launch.output_paths.values():
        # a not-yet-existing output path (PipelineData is_directory=False): its folder is bound,
        # so the script can create a file or a folder there
        add(path if os.path.isdir(path) else os.path.dirname(path), read_only=False)
    add(launch.source_dir, read_only=True)
    for path in launch.input_paths.values():
        add(path, read_only=True)
    add(_mlpipe_package_dir(), read_only=True, target=f"{PACKAGE_PARENT}/mlpipe_provider")
    site_targets: list[str] = []
    if settings.worker_packages:
        for index, folder in enumerate(_worker_site_dirs()):
            target = f"{WORKER_SITE_ROOT}/{index}"
            add(folder, read_only=True, target=target)
            site_targets.append(target)
    return mounts, site_targets


def _gpu_request(device_ids: list[str] | None) -> list[Any] | None:
    if not device_ids:
        return None
    from docker.types import DeviceRequest

    return [DeviceRequest(device_ids=list(device_ids), capabilities=[["gpu"]])]


def _rank_device(devices: list[str], env: dict[str, str], rank: int) -> str:
    nodes = int(env.get("NODE_COUNT") or 1)
    node_rank = int(env.get("NODE_RANK") or 0)
    local_rank = int(env.get("LOCAL_RANK") or rank)
    return device_for_rank(devices, nodes, node_rank, local_rank)


def container_kwargs(
    launch: Launch,
    settings: DockerSettings,
    *,
    gpu_devices: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``DockerOperator`` keyword arguments, one dict per command (rank) of the launch.

    Pure: builds nothing and talks to no engine, so it can be checked without Docker or GPUs.
    ``gpu_devices`` are the leased device ids, each node's in turn; a rank gets one of its node's,
    round-robin, so ranks beyond the node's GPUs share them (``distributed.device_for_rank``).
    """
    op = launch.op
    declared = (getattr(op, "environment", None) or {}).get("environment_variables") or {}
    mounts, site_targets = container_mounts(launch, settings)
    ranks = len(launch.commands)
    run_id = launch.commands[0].env.get("MLPIPE_RUN_ID", "") if launch.commands else ""
    out = []
    for rank, command in enumerate(launch.commands):
        if not command.argv or not all(isinstance(a, str) for a in command.argv):
            raise TypeError("argv must be a non-empty list of strings")
        env = container_environment(command.env, declared)
        python_path = [PACKAGE_PARENT]
        if site_targets:
            python_path.append(BOOT_DIR)
            env["MLPIPE_WORKER_SITE"] = os.pathsep.join(site_targets)
        if declared.get("PYTHONPATH"):
            python_path.append(str(declared["PYTHONPATH"]))
        env["PYTHONPATH"] = os.pathsep.join(python_path)
        env.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # source and package are read-only
        devices = [_rank_device(gpu_devices, command.env, rank)] if gpu_devices else None
        out.append(
            {
                "task_id": f"{op.task_id}.container{rank}",
                "image": settings.image,
                "docker_url": settings.url,
                "docker_conn_id": settings.docker_conn_id,
                # exec form: the image's Python is the entrypoint, so no image ENTRYPOINT (such
                # as a shell) ever sees the arguments
                "entrypoint": [settings.python],
                "command": list(command.argv[1:]),
                "environment": env,
                "mounts": list(mounts),
                "working_dir": str(launch.source_dir),
                "network_mode": settings.network,
                "user": settings.user,
                "shm_size": settings.shm_size,
                "mem_limit": settings.mem_limit,
                "device_requests": _gpu_request(devices),
                "force_pull": settings.pull == "always",
                "mount_tmp_dir": False,
                "auto_remove": "force" if ranks == 1 else "never",  # ranks: removed after all end
                "tty": False,
                "xcom_all": True,
                "labels": {
                    f"{LABEL_PREFIX}.step": str(op.step_name),
                    f"{LABEL_PREFIX}.run": run_id,
                    f"{LABEL_PREFIX}.rank": str(rank),
                },
            }
        )
    return out


# --------------------------------------------------------------------------- running


class _RankLog:
    """The step's logger as the nested DockerOperator's: container output in the step's log."""

    _NESTED_WARNING = "cannot be called outside of the Task Runner"

    def __init__(self, log: Any, prefix: str):
        self._log = log
        self._prefix = prefix

    def _emit(self, level: str, msg: Any, *args: Any, **kwargs: Any) -> None:
        getattr(self._log, level)(self._prefix + str(msg), *args, **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("info", msg, *args, **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("debug", msg, *args, **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        # running a nested operator is what this backend is for, not a mistake to warn about
        level = "debug" if self._NESTED_WARNING in str(msg) else "warning"
        self._emit(level, msg, *args, **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("error", msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("exception", msg, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class _WholeLines:
    """The container's output as whole lines, each stream assembled on its own.

    Docker delivers stdout and stderr frames independently, and an unbuffered Python writes a
    line's text and its newline separately, so one merged buffer (what ``DockerOperator`` reads)
    would splice a stderr line into the middle of a stdout line. Attaching with ``demux`` and
    keeping one buffer per stream gives ``fetch_logs`` whole lines; the stderr tail is kept for
    the failure message, as the local backend does.
    """

    def __init__(self, frames: Any):
        self._frames = frames
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def __iter__(self) -> Iterator[bytes]:
        buffers = [b"", b""]
        for frame in self._frames:
            for index, chunk in enumerate(frame):
                if not chunk:
                    continue
                buffers[index] += chunk
                *lines, buffers[index] = buffers[index].split(b"\n")
                for line in lines:
                    yield from self._line(index, line)
        for index, rest in enumerate(buffers):
            if rest:
                yield from self._line(index, rest)

    def _line(self, index: int, line: bytes) -> Iterator[bytes]:
        if index == 1:
            self.stderr_tail.append(line.decode("utf-8", errors="replace").rstrip())
        yield line + b"\n"


class _LineClient:
    """The provider's API client, whose streaming ``attach`` yields ``_WholeLines``."""

    def __init__(self, client: Any, owner: Any):
        self._client = client
        self._owner = owner

    def attach(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("stream"):
            return self._client.attach(*args, **kwargs)
        lines = _WholeLines(self._client.attach(*args, **{**kwargs, "demux": True}))
        self._owner.stderr_tail = lines.stderr_tail
        return lines

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@functools.cache
def _step_operator_class() -> type:
    from airflow.providers.docker.operators.docker import DockerOperator

    class StepContainerOperator(DockerOperator):
        """``DockerOperator`` reading the container's output as whole lines per stream."""

        stderr_tail: collections.deque[str] | None = None

        @property
        def cli(self) -> Any:
            return _LineClient(self.hook.api_client, self)

    return StepContainerOperator


def _api_client(settings: DockerSettings, step_name: str) -> Any:
    from airflow.providers.docker.hooks.docker import DockerHook

    try:
        return DockerHook(
            docker_conn_id=settings.docker_conn_id, base_url=settings.url, version="auto"
        ).api_client
    except Exception as exc:  # noqa: BLE001 - AirflowException, DockerException, OSError
        raise StepFailedError(
            f"step {step_name!r}: cannot reach the Docker engine at {settings.url}: {exc}"
        ) from None


def _check_image(client: Any, settings: DockerSettings, step_name: str) -> None:
    from docker.errors import ImageNotFound

    if settings.pull != "never":
        return
    try:
        client.inspect_image(settings.image)
    except ImageNotFound:
        raise UserErrorException(
            f"step {step_name!r}: image {settings.image!r} is not on the Docker engine at "
            f'{settings.url}; build or load it there (see docs/backends.md), or set "pull": '
            '"missing" on the compute target to pull it from a registry'
        ) from None


def _exit_code(exc: BaseException) -> str:
    match = _STATUS_RE.search(str(exc))
    return match.group(1) if match else "non-zero"


class _Group:
    """Runs one DockerOperator per rank in threads; stops them all on a failure or the timeout."""

    def __init__(self, launch: Launch, kwargs_list: list[dict[str, Any]], settings: DockerSettings):
        operator_class = _step_operator_class()
        self.launch = launch
        self.settings = settings
        self.ops = []
        many = len(kwargs_list) > 1
        for rank, kwargs in enumerate(kwargs_list):
            docker_op = operator_class(**kwargs)
            docker_op._cached_logger = _RankLog(launch.op.log, f"[rank {rank}] " if many else "")
            self.ops.append(docker_op)
        self.results: dict[int, Any] = {}
        self.failures: list[tuple[int, BaseException]] = []
        self.stopping = False
        self.killed = False
        self.timed_out = False
        self._stopped: set[str] = set()
        self._lock = threading.Lock()
        self.holder: str | None = None

    def _run_rank(self, rank: int) -> None:
        try:
            self.results[rank] = self.ops[rank].execute(self.launch.context)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            with self._lock:
                self.failures.append((rank, exc))

    def _start_holder(self, client: Any) -> None:
        """Several ranks: a holder container owns the network namespace they all join."""
        first = self.ops[0]
        container = client.create_container(
            image=self.settings.image,
            entrypoint=[self.settings.python],
            command=["-c", "import signal; signal.pause()"],
            user=self.settings.user,
            labels={**first.labels, f"{LABEL_PREFIX}.rank": "network"},
            host_config=client.create_host_config(network_mode=self.settings.network),
        )
        self.holder = container["Id"]
        client.start(self.holder)
        for docker_op in self.ops:
            docker_op.network_mode = f"container:{self.holder}"

    def kill(self) -> None:
        """The task is being killed (``on_kill``): stop every container now."""
        self.killed = True
        self.stop_all()

    def stop_all(self) -> None:
        """Stop every container started so far; called again, it stops those created since."""
        self.stopping = True
        for docker_op in self.ops:
            container = docker_op.container
            if container is None or container["Id"] in self._stopped:
                continue
            self._stopped.add(container["Id"])
            with contextlib.suppress(Exception):
                docker_op.cli.stop(container["Id"], timeout=STOP_GRACE_S)

    def cleanup(self, client: Any) -> None:
        """Remove every container this step created (DockerOperator's own removal may not have run)."""
        from docker.errors import NotFound

        ids = [o.container["Id"] for o in self.ops if o.container is not None]
        if self.holder:
            ids.append(self.holder)
        for container_id in ids:
            with contextlib.suppress(NotFound, Exception):
                client.remove_container(container_id, force=True)

    def run(self, client: Any, timeout_s: float | None) -> tuple[bool, float]:
        """Run all ranks; returns ``(timed out, duration)``."""
        started = time.monotonic()
        if len(self.ops) > 1:
            self._start_holder(client)
        threads = [
            threading.Thread(target=self._run_rank, args=(rank,), daemon=True)
            for rank in range(len(self.ops))
        ]
        for thread in threads:
            thread.start()
        try:
            with stoppable(self.kill):
                self._wait(threads, started, timeout_s)
        except BaseException:
            # the task itself is being stopped (timeout, kill, Ctrl-C): take the containers down
            self.stop_all()
            raise
        return self.timed_out, time.monotonic() - started

    def _wait(
        self, threads: list[threading.Thread], started: float, timeout_s: float | None
    ) -> None:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.1)
            if self.stopping:
                self.stop_all()  # a container created while stopping is stopped too
            elif self.failures:
                self.stop_all()
            elif timeout_s is not None and time.monotonic() - started > timeout_s:
                self.timed_out = True
                self.stop_all()


def _failure_message(
    launch: Launch,
    settings: DockerSettings,
    rank: int,
    exc: BaseException,
    ranks: int,
    stderr_tail: Any = None,
) -> str:
    op = launch.op
    what = getattr(op, "script_name", None) or launch.commands[rank].argv[-1]
    where = f" (container {rank} of {ranks})" if ranks > 1 else ""
    logs = [str(line) for line in getattr(exc, "logs", None) or []]
    if logs or "StatusCode" in str(exc):
        stderr = list(stderr_tail or [])
        stream, lines = ("stderr", stderr) if stderr else ("output", logs)
        detail = "\n".join(lines[-STDERR_TAIL_LINES:]) or "(no output)"
        return (
            f"step {op.step_name!r} failed: {what}{where} exited with code {_exit_code(exc)} in "
            f"image {settings.image!r}; last lines of {stream}:\n{detail}"
        )
    return f"step {op.step_name!r} failed: {what}{where} could not run in image {settings.image!r}: {exc}"


def run(launch: Launch) -> ProcessResult:
    """Run every command of ``launch`` in its own container; raise ``StepFailedError`` on failure."""
    from mlpipe_provider.runtime.devices import DeviceLease

    op = launch.op
    if not launch.commands:
        raise TypeError("a launch needs at least one command")
    settings = DockerSettings.of(op)
    client = _api_client(settings, op.step_name)
    _check_image(client, settings, op.step_name)
    environment = getattr(op, "environment", None) or {}
    if (environment.get("dependencies") or {}).get("pip_packages") and not environment.get(
        "user_managed_dependencies"
    ):
        op.log.warning(
            "mlpipe: step %r: the docker backend does not install pip packages; image %r must "
            "provide them",
            op.step_name,
            settings.image,
        )
    lease = None
    if settings.gpus:
        nodes = int(launch.commands[0].env.get("NODE_COUNT") or 1)
        per_node = -(-len(launch.commands) // nodes)
        lease = DeviceLease.acquire(
            gpus_held(nodes, per_node, settings.gpus), settings.gpus * nodes, step_name=op.step_name
        )
        op.log.info("mlpipe: step %r holds GPU device(s) %s", op.step_name, ",".join(lease.devices))
    op.log.info(
        "mlpipe: step %r runs in image %r (engine %s, network %s)",
        op.step_name,
        settings.image,
        settings.url,
        settings.network,
    )
    group = None
    try:
        kwargs_list = container_kwargs(
            launch, settings, gpu_devices=lease.devices if lease else None
        )
        group = _Group(launch, kwargs_list, settings)
        timed_out, duration = group.run(client, launch.timeout_s)
    finally:
        if group is not None:
            group.cleanup(client)
        if lease is not None:
            lease.release()
        with contextlib.suppress(Exception):
            client.close()
    if group.killed:
        raise StepFailedError(
            f"step {op.step_name!r} was killed; its container(s) were stopped and removed"
        )
    if timed_out:
        raise StepFailedError(
            f"step {op.step_name!r} timed out after {launch.timeout_s:g} s "
            "(max_run_duration_seconds) and its container was stopped"
        )
    if group.failures:
        rank, exc = group.failures[0]
        message = _failure_message(
            launch, settings, rank, exc, len(launch.commands), group.ops[rank].stderr_tail
        )
        raise StepFailedError(message) from None
    output = group.results.get(0)
    lines = output if isinstance(output, list) else ([output] if output else [])
    return ProcessResult(0, duration, [str(line) for line in lines[-STDERR_TAIL_LINES:]])
