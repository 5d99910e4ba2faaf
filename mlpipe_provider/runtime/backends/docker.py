"""The ``docker`` backend: each process of a step runs in its own container, created, started,
followed, stopped and removed through the Docker provider's ``DockerHook`` and its docker-py
``APIClient`` (the provider's own layering: operator -> hook -> client; no operator runs inside
ours).

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
Killing the task stops them (``cancel.stoppable``); a worker that dies leaves them labelled with
its task (``cancel.TaskIdentity``), and the task's next attempt removes them before it starts.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from mlpipe_provider.runtime.cancel import LABEL_PREFIX, TaskIdentity, stoppable
from mlpipe_provider.runtime.distributed import device_for_rank, gpus_held, step_environment
from mlpipe_provider.runtime.process import STDERR_TAIL_LINES, ProcessResult

CONTAINER_ROOT = "/opt/mlpipe"
PACKAGE_PARENT = f"{CONTAINER_ROOT}/lib"  # holds the mounted mlpipe_provider package
BOOT_DIR = f"{PACKAGE_PARENT}/mlpipe_provider/runtime/backends/container_boot"
WORKER_SITE_ROOT = f"{CONTAINER_ROOT}/worker-site"
DEFAULT_PYTHON = "python3"
DEFAULT_NETWORK = "none"
STOP_GRACE_S = 5

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
    return step_environment(env, declared, never=HOST_ONLY_VARIABLES)


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
    """What each container is created with, one dict per command (rank) of the launch.

    The keys are docker-py's ``create_container`` arguments (``image``, ``entrypoint``,
    ``command``, ``environment``, ``working_dir``, ``user``, ``labels``) and its
    ``create_host_config`` ones (``mounts``, ``network_mode``, ``shm_size``, ``mem_limit``,
    ``device_requests``); ``start_container`` splits them.
    Pure: builds nothing and talks to no engine, so it can be checked without Docker or GPUs.
    ``gpu_devices`` are the leased device ids, each node's in turn; a rank gets one of its node's,
    round-robin, so ranks beyond the node's GPUs share them (``distributed.device_for_rank``).
    """
    op = launch.op
    declared = (getattr(op, "environment", None) or {}).get("environment_variables") or {}
    mounts, site_targets = container_mounts(launch, settings)
    run_id = launch.commands[0].env.get("MLPIPE_RUN_ID", "") if launch.commands else ""
    identity = TaskIdentity.of(op, launch.context)
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
                "image": settings.image,
                # exec form: the image's Python is the entrypoint, so no image ENTRYPOINT (such
                # as a shell) ever sees the arguments
                "entrypoint": [settings.python if launch.runs_python else command.argv[0]],
                "command": list(command.argv[1:]),
                "environment": env,
                "working_dir": str(launch.source_dir),
                "user": settings.user,
                "labels": {
                    **(identity.labels() if identity else {}),
                    f"{LABEL_PREFIX}.step": str(op.step_name),
                    f"{LABEL_PREFIX}.run": run_id,
                    f"{LABEL_PREFIX}.rank": str(rank),
                },
                "mounts": list(mounts),
                "network_mode": settings.network,
                "shm_size": settings.shm_size,
                "mem_limit": settings.mem_limit,
                "device_requests": _gpu_request(devices),
            }
        )
    return out


# --------------------------------------------------------------------------- running

HOST_CONFIG_KEYS = ("mounts", "network_mode", "shm_size", "mem_limit", "device_requests")


class _WholeLines:
    """The container's output as whole lines, each stream assembled on its own.

    Docker delivers stdout and stderr frames independently, and an unbuffered Python writes a
    line's text and its newline separately, so one merged buffer would splice a stderr line into
    the middle of a stdout line. Attaching with ``demux`` and keeping one buffer per stream gives
    whole lines; the stderr tail is kept for the failure message, as the local backend does.
    """

    def __init__(self, frames: Any):
        self._frames = frames
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)

    def __iter__(self) -> Iterator[str]:
        buffers = [b"", b""]
        for frame in self._frames:
            for index, chunk in enumerate(frame):
                if not chunk:
                    continue
                buffers[index] += chunk
                *lines, buffers[index] = buffers[index].split(b"\n")
                for line in lines:
                    yield self._line(index, line)
        for index, rest in enumerate(buffers):
            if rest:
                yield self._line(index, rest)

    def _line(self, index: int, line: bytes) -> str:
        text = line.decode("utf-8", errors="replace").rstrip()
        if index == 1:
            self.stderr_tail.append(text)
        return text


def _hook(settings: DockerSettings) -> Any:
    from airflow.providers.docker.hooks.docker import DockerHook

    return DockerHook(docker_conn_id=settings.docker_conn_id, base_url=settings.url, version="auto")


def _api_client(settings: DockerSettings, step_name: str) -> Any:
    """A docker-py ``APIClient`` from a fresh ``DockerHook`` (one per thread that uses it)."""
    try:
        return _hook(settings).api_client
    except Exception as exc:  # noqa: BLE001 - AirflowException, DockerException, OSError
        raise StepFailedError(
            f"step {step_name!r}: cannot reach the Docker engine at {settings.url}: {exc}"
        ) from None


def _ensure_image(client: Any, settings: DockerSettings, step_name: str) -> None:
    """The image on the engine: pulled when the target allows it, else a clear error."""
    from docker.errors import ImageNotFound

    if settings.pull == "always":
        client.pull(settings.image)
        return
    try:
        client.inspect_image(settings.image)
    except ImageNotFound:
        if settings.pull == "missing":
            client.pull(settings.image)
            return
        raise UserErrorException(
            f"step {step_name!r}: image {settings.image!r} is not on the Docker engine at "
            f'{settings.url}; build or load it there (see docs/backends.md), or set "pull": '
            '"missing" on the compute target to pull it from a registry'
        ) from None


def remove_leftovers(client: Any, identity: TaskIdentity | None) -> list[str]:
    """Remove the containers an earlier, dead attempt of this task left (``cancel`` module)."""
    if identity is None:
        return []
    filters = {"label": [f"{key}={value}" for key, value in identity.labels().items()]}
    removed = []
    for container in client.containers(all=True, filters=filters):
        with contextlib.suppress(Exception):
            client.remove_container(container["Id"], force=True)
            removed.append(container["Id"])
    return removed


def start_container(client: Any, spec: dict[str, Any]) -> str:
    """Create and start one container from a ``container_kwargs`` dict; returns its id."""
    create = {k: v for k, v in spec.items() if k not in HOST_CONFIG_KEYS}
    host = {k: spec[k] for k in HOST_CONFIG_KEYS if spec.get(k) is not None}
    container = client.create_container(
        **create, host_config=client.create_host_config(**host), tty=False
    )
    return container["Id"]


@dataclass
class _Rank:
    """One rank's container and what came out of it."""

    container: str | None = None
    exit_code: int | None = None
    output: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES)
    )
    stderr_tail: collections.deque[str] = field(default_factory=collections.deque)
    error: BaseException | None = None


class _Group:
    """Runs one container per rank, each followed in its own thread; stops them all on a
    failure, the timeout or a kill, and removes them all at the end."""

    def __init__(self, launch: Launch, specs: list[dict[str, Any]], settings: DockerSettings):
        self.launch = launch
        self.specs = specs
        self.settings = settings
        self.ranks = [_Rank() for _ in specs]
        self.stopping = False
        self.killed = False
        self.timed_out = False
        self.holder: str | None = None
        self._stopped: set[str] = set()
        self._failed: list[int] = []
        self._lock = threading.Lock()

    @property
    def failed(self) -> list[int]:
        """Ranks that failed, first failure first (the others may only have been stopped)."""
        return list(self._failed)

    def _run_rank(self, index: int) -> None:
        rank = self.ranks[index]
        prefix = f"[rank {index}] " if len(self.ranks) > 1 else ""
        log = self.launch.op.log
        client = None
        try:
            client = _api_client(self.settings, self.launch.op.step_name)
            with self._lock:
                if self.stopping:
                    return
                rank.container = start_container(client, self.specs[index])
            # attached before it starts: a container that exits at once has ended its streams
            # before a later attach could follow them (what DockerOperator does too)
            frames = client.attach(
                rank.container, stdout=True, stderr=True, stream=True, demux=True
            )
            client.start(rank.container)
            lines = _WholeLines(frames)
            rank.stderr_tail = lines.stderr_tail
            for line in lines:
                rank.output.append(line)
                log.info("%s%s", prefix, line)
            rank.exit_code = int(client.wait(rank.container).get("StatusCode", -1))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            rank.error = exc
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        if rank.error is not None or rank.exit_code not in (None, 0):
            with self._lock:
                self._failed.append(index)

    def _start_holder(self, client: Any) -> None:
        """Several ranks: a holder container owns the network namespace they all join."""
        first = self.specs[0]
        self.holder = start_container(
            client,
            {
                "image": self.settings.image,
                "entrypoint": [self.settings.python],
                "command": ["-c", "import signal; signal.pause()"],
                "user": self.settings.user,
                "labels": {**first["labels"], f"{LABEL_PREFIX}.rank": "network"},
                "network_mode": self.settings.network,
            },
        )
        client.start(self.holder)
        for spec in self.specs:
            spec["network_mode"] = f"container:{self.holder}"

    def kill(self) -> None:
        """The task is being killed (``on_kill``): stop every container now."""
        self.killed = True
        self.stop_all()

    def stop_all(self, client: Any = None) -> None:
        """Stop every container started so far; called again, it stops those created since."""
        with self._lock:
            self.stopping = True
            ids = [
                r.container for r in self.ranks if r.container and r.container not in self._stopped
            ]
            self._stopped.update(ids)
        if not ids:
            return
        own = client is None
        try:
            client = client or _api_client(self.settings, self.launch.op.step_name)
            for container_id in ids:
                with contextlib.suppress(Exception):
                    client.stop(container_id, timeout=STOP_GRACE_S)
        except Exception:  # noqa: BLE001 - cleanup removes them anyway
            return
        finally:
            if own and client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    def cleanup(self, client: Any) -> None:
        """Remove every container this step created, whatever happened."""
        ids = [r.container for r in self.ranks if r.container]
        if self.holder:
            ids.append(self.holder)
        for container_id in ids:
            with contextlib.suppress(Exception):
                client.remove_container(container_id, force=True)

    def run(self, client: Any, timeout_s: float | None) -> tuple[bool, float]:
        """Run all ranks; returns ``(timed out, duration)``."""
        started = time.monotonic()
        with stoppable(self.kill):
            if len(self.specs) > 1:
                self._start_holder(client)
            threads = [
                threading.Thread(target=self._run_rank, args=(index,), daemon=True)
                for index in range(len(self.specs))
            ]
            for thread in threads:
                thread.start()
            try:
                self._wait(threads, started, timeout_s, client)
            except BaseException:
                # the task itself is being stopped (timeout, kill, Ctrl-C): take the containers down
                self.stop_all(client)
                raise
        return self.timed_out, time.monotonic() - started

    def _wait(
        self,
        threads: list[threading.Thread],
        started: float,
        timeout_s: float | None,
        client: Any,
    ) -> None:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.1)
            if self.stopping or self.failed:
                self.stop_all(client)  # a container created while stopping is stopped too
            elif timeout_s is not None and time.monotonic() - started > timeout_s:
                self.timed_out = True
                self.stop_all(client)


def _failure_message(launch: Launch, settings: DockerSettings, index: int, rank: _Rank) -> str:
    op = launch.op
    ranks = len(launch.commands)
    what = getattr(op, "script_name", None) or launch.commands[index].argv[-1]
    where = f" (container {index} of {ranks})" if ranks > 1 else ""
    if rank.error is not None:
        return (
            f"step {op.step_name!r} failed: {what}{where} could not run in image "
            f"{settings.image!r}: {rank.error}"
        )
    stderr = list(rank.stderr_tail)
    stream, lines = ("stderr", stderr) if stderr else ("output", list(rank.output))
    detail = "\n".join(lines[-STDERR_TAIL_LINES:]) or "(no output)"
    return (
        f"step {op.step_name!r} failed: {what}{where} exited with code {rank.exit_code} in "
        f"image {settings.image!r}; last lines of {stream}:\n{detail}"
    )


def run(launch: Launch) -> ProcessResult:
    """Run every command of ``launch`` in its own container; raise ``StepFailedError`` on failure."""
    from mlpipe_provider.runtime.devices import DeviceLease

    op = launch.op
    if not launch.commands:
        raise TypeError("a launch needs at least one command")
    settings = DockerSettings.of(op)
    client = _api_client(settings, op.step_name)
    lease = None
    group = None
    try:
        removed = remove_leftovers(client, TaskIdentity.of(op, launch.context))
        if removed:
            op.log.warning(
                "mlpipe: step %r: removed %d container(s) an earlier attempt of this task left",
                op.step_name,
                len(removed),
            )
        _ensure_image(client, settings, op.step_name)
        environment = getattr(op, "environment", None) or {}
        if (environment.get("dependencies") or {}).get("pip_packages") and not environment.get(
            "user_managed_dependencies"
        ):
            op.log.warning(
                "mlpipe: step %r: the docker backend does not install pip packages; image %r "
                "must provide them",
                op.step_name,
                settings.image,
            )
        if settings.gpus:
            nodes = int(launch.commands[0].env.get("NODE_COUNT") or 1)
            per_node = -(-len(launch.commands) // nodes)
            lease = DeviceLease.acquire(
                gpus_held(nodes, per_node, settings.gpus),
                settings.gpus * nodes,
                step_name=op.step_name,
            )
            op.log.info(
                "mlpipe: step %r holds GPU device(s) %s", op.step_name, ",".join(lease.devices)
            )
        op.log.info(
            "mlpipe: step %r runs in image %r (engine %s, network %s)",
            op.step_name,
            settings.image,
            settings.url,
            settings.network,
        )
        specs = container_kwargs(launch, settings, gpu_devices=lease.devices if lease else None)
        group = _Group(launch, specs, settings)
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
    if group.failed:
        index = group.failed[0]
        raise StepFailedError(
            _failure_message(launch, settings, index, group.ranks[index])
        ) from None
    return ProcessResult(0, duration, list(group.ranks[0].output))
