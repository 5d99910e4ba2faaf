"""The ``kubernetes`` backend: a step's processes run in pods, through ``KubernetesPodOperator``.

``pod_operators(launch)`` turns a ``Launch`` into one ``KubernetesPodOperator`` per node, without
touching a cluster (so the pod specs can be tested anywhere with
``build_pod_request_obj(context=None, dry_run=True)``); ``run(launch)`` runs them from inside
the step's Airflow task (in parallel for a multi-node job) and turns any failure into a
``StepFailedError`` naming the step.

What a pod gets (docs/backends.md, "Kubernetes", has the deployment side):

* **settings**: the kubernetes keys of the target's config, as compiled into the operator's
  ``compute`` (like the docker backend's); ``compile_problem`` checks them when compiling.
* **image**: ``images.effective_image``: the step Environment's docker image when it declares
  one (other than Azure ML's stock images), else the target's ``image``. The command is the
  step's argument list with ``argv[0]`` (the worker's interpreter) replaced by the image's
  Python (the target's ``python``, default ``python3``). Never a shell.
* **environment**: only what mlpipe set for this step (``MLPIPE_*``, ``AZUREML_*``,
  ``AML_PARAMETER_*``, rank variables, ``PYTHONUNBUFFERED``) and the variables the step's
  Environment declares; nothing the worker merely inherited (``PATH``, ``HOME``, credentials).
* **resources**: a step owns whole nodes of its VM size, as on Azure ML. Requests are
  ``request_fraction`` (default 0.9) of the size's CPUs and memory, leaving headroom for what
  the kubelet and system daemons reserve (a pod asking for 100% of a node never schedules);
  the memory limit equals the request, the CPU limit is the size's CPU count, and
  ``nvidia.com/gpu`` is limited to the size's GPUs.
* **placement**: ``node_selector``, ``tolerations``, ``namespace``, ``service_account_name``
  from the target's config.
* **data**: every local datastore the step touches is a PersistentVolumeClaim
  (``datastore_pvc``) mounted at the datastore's root path on the worker, so the paths in the
  arguments and variables are valid in the pod unchanged; each input is mounted again, read-only,
  at its own path (a ``subPath`` mount), and a datastore the step only reads is mounted
  read-only as a whole. The step's source folder comes from ``source_pvc`` (read-only) or must
  already be in the image at the same path.
* **several processes per node** (``process_count_per_node`` > 1): one container runs a tiny
  launcher, a constant Python program passed with ``python3 -c`` whose only argument is a JSON
  list of the ranks' argument lists and variables. It starts every rank, prefixes their output
  with ``[rank N]``, and stops all of them as soon as one fails (a collective would otherwise
  hang), exiting with that rank's code. One container per rank was the alternative; it cannot
  fail fast, and it would have to split GPUs, CPUs and memory between containers.
* **several nodes**: one pod per node. Each gets a stable ``hostname`` under ``subdomain`` =
  ``headless_service`` (default ``mlpipe-nodes``), and every rank's ``MASTER_ADDR`` names the
  first pod (``<hostname>.<service>``), which resolves only if that headless Service exists and
  selects the pods (they carry the label ``mlpipe/service: <service>``).
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import re
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe_provider.compute_sizes import lookup_vm_size
from mlpipe_provider.errors import StepFailedError, UserErrorException
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.images import effective_image
from mlpipe_provider.runtime.process import Command, ProcessResult

IMAGE_PYTHON = "python3"
CONTAINER_NAME = "base"  # KubernetesPodOperator's container: the one whose logs it follows
DEFAULT_REQUEST_FRACTION = 0.9
DEFAULT_HEADLESS_SERVICE = "mlpipe-nodes"
DEFAULT_STARTUP_TIMEOUT_S = 600  # pulling a CUDA image onto a fresh GPU node takes minutes
GPU_RESOURCE = "nvidia.com/gpu"

#: variables mlpipe sets per rank; kept even if the worker happens to have the same value
RANK_ENV_NAMES = frozenset(
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
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "OMPI_COMM_WORLD_NODE_RANK",
        "PMI_RANK",
        "PMI_SIZE",
        "TF_CONFIG",
        "PYTHONUNBUFFERED",
    }
)
#: never sent unless the step's Environment declares it: the device plugin picks the GPUs
DROPPED_ENV_NAMES = frozenset({"CUDA_VISIBLE_DEVICES"})

# The per-node launcher for pods running more than one rank. A constant program (values reach
# it only as the JSON argument), standard library only, so any image with python3 can run it.
LAUNCHER = r"""
import json, os, signal, subprocess, sys, threading, time
ranks = json.loads(sys.argv[1])
procs, pumps = [], []
def pump(stream, out, prefix):
    for raw in iter(stream.readline, b""):
        out.write(prefix + raw.decode("utf-8", "replace"))
        out.flush()
def stop():
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
def on_term(signum, frame):
    stop()
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, on_term)
for rank in ranks:
    env = dict(os.environ)
    env.update(rank["env"])
    p = subprocess.Popen(rank["argv"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    procs.append(p)
    for stream, out in ((p.stdout, sys.stdout), (p.stderr, sys.stderr)):
        t = threading.Thread(target=pump, args=(stream, out, rank["prefix"]), daemon=True)
        t.start()
        pumps.append(t)
failed = None
while True:
    codes = [p.poll() for p in procs]
    failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
    if failed is not None or all(c == 0 for c in codes):
        break
    time.sleep(0.1)
if failed is not None:
    stop()
for t in pumps:
    t.join(timeout=5)
if failed is None:
    sys.exit(0)
code = procs[failed].returncode
sys.stderr.write("mlpipe launcher: %sexited with code %d\n" % (ranks[failed]["prefix"], code))
sys.exit(code if code > 0 else 128 - code)
"""

_DNS_LABEL_RE = re.compile(r"[^a-z0-9-]+")


# --------------------------------------------------------------------------- the target's config


@dataclass(frozen=True)
class Claim:
    """A PersistentVolumeClaim, optionally a folder inside it, and where it is mounted."""

    claim: str
    sub_path: str = ""
    mount_path: str | None = None


@dataclass
class KubernetesSettings:
    """The kubernetes keys of a compute target's config (``ComputeTargetConfig`` extras)."""

    target: str
    image: str | None = None
    python: str = IMAGE_PYTHON
    namespace: str | None = None
    service_account_name: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    datastore_pvc: dict[str, Claim] = field(default_factory=dict)
    source_pvc: Claim | None = None
    request_fraction: float = DEFAULT_REQUEST_FRACTION
    headless_service: str = DEFAULT_HEADLESS_SERVICE
    image_pull_policy: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    kubernetes_conn_id: str | None = None
    in_cluster: bool | None = None
    config_file: str | None = None
    cluster_context: str | None = None
    startup_timeout_seconds: int = DEFAULT_STARTUP_TIMEOUT_S
    on_finish_action: str = "delete_pod"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


_TOLERATION_KEYS = {
    "key": "key",
    "operator": "operator",
    "value": "value",
    "effect": "effect",
    "tolerationSeconds": "toleration_seconds",
    "toleration_seconds": "toleration_seconds",
}


def _config_error(target: str, key: str, message: str) -> UserErrorException:
    return UserErrorException(
        f"compute target {target!r} (backend kubernetes), config {key!r}: {message}"
    )


def _str_dict(target: str, key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _config_error(target, key, f"must map strings to strings, got {value!r}")
    return dict(value)


def _optional_str(target: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _config_error(target, key, f"must be a non-empty string, got {value!r}")
    return value


def _claim(target: str, key: str, value: Any, *, allow_mount_path: bool = False) -> Claim:
    if isinstance(value, str) and value:
        return Claim(value)
    allowed = {"claim", "sub_path"} | ({"mount_path"} if allow_mount_path else set())
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("claim"), str)
        or not value["claim"]
        or set(value) - allowed
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise _config_error(
            target,
            key,
            f"must be a claim name or an object with keys {sorted(allowed)} (claim required), "
            f"got {value!r}",
        )
    sub_path = value.get("sub_path", "").strip("/")
    if ".." in sub_path.split("/"):
        raise _config_error(target, key, f"sub_path {sub_path!r} must not contain '..'")
    mount_path = value.get("mount_path")
    if mount_path is not None and not posixpath.isabs(mount_path):
        raise _config_error(target, key, f"mount_path {mount_path!r} must be absolute")
    return Claim(value["claim"], sub_path, mount_path)


def target_settings(
    target: str, config: dict[str, Any], default_datastore: str
) -> KubernetesSettings:
    """Read and check the kubernetes keys of a target's config; errors name the target and key."""
    settings = KubernetesSettings(target=target)
    for key in (
        "image",
        "python",
        "namespace",
        "service_account_name",
        "image_pull_policy",
        "kubernetes_conn_id",
        "config_file",
        "cluster_context",
    ):
        value = _optional_str(target, key, config.get(key))
        if value is not None or key != "python":
            setattr(settings, key, value)
    settings.node_selector = _str_dict(target, "node_selector", config.get("node_selector"))
    settings.labels = _str_dict(target, "labels", config.get("labels"))
    settings.annotations = _str_dict(target, "annotations", config.get("annotations"))

    tolerations = config.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise _config_error(target, "tolerations", f"must be a list, got {tolerations!r}")
    for index, item in enumerate(tolerations):
        if not isinstance(item, dict) or not item or set(item) - set(_TOLERATION_KEYS):
            raise _config_error(
                target,
                f"tolerations[{index}]",
                f"must be an object with keys among {sorted(_TOLERATION_KEYS)}, got {item!r}",
            )
        settings.tolerations.append({_TOLERATION_KEYS[k]: v for k, v in item.items()})

    pvc = config.get("datastore_pvc")
    if pvc is not None:
        if isinstance(pvc, str) or (isinstance(pvc, dict) and "claim" in pvc):
            settings.datastore_pvc = {default_datastore: _claim(target, "datastore_pvc", pvc)}
        elif isinstance(pvc, dict):
            settings.datastore_pvc = {
                str(name): _claim(target, f"datastore_pvc.{name}", value)
                for name, value in pvc.items()
            }
        else:
            raise _config_error(target, "datastore_pvc", f"got {pvc!r}")
    if config.get("source_pvc") is not None:
        settings.source_pvc = _claim(
            target, "source_pvc", config["source_pvc"], allow_mount_path=True
        )

    fraction = config.get("request_fraction", DEFAULT_REQUEST_FRACTION)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, (int, float))
        or not 0 < fraction <= 1
    ):
        raise _config_error(target, "request_fraction", f"must be in (0, 1], got {fraction!r}")
    settings.request_fraction = float(fraction)
    service = config.get("headless_service", DEFAULT_HEADLESS_SERVICE)
    if not isinstance(service, str) or not re.fullmatch(
        r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", service
    ):
        raise _config_error(target, "headless_service", f"must be a DNS label, got {service!r}")
    settings.headless_service = service
    secrets = config.get("image_pull_secrets") or []
    if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
        raise _config_error(
            target, "image_pull_secrets", f"must be a list of names, got {secrets!r}"
        )
    settings.image_pull_secrets = list(secrets)
    in_cluster = config.get("in_cluster")
    if in_cluster is not None and not isinstance(in_cluster, bool):
        raise _config_error(target, "in_cluster", f"must be true or false, got {in_cluster!r}")
    settings.in_cluster = in_cluster
    timeout = config.get("startup_timeout_seconds", DEFAULT_STARTUP_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise _config_error(
            target, "startup_timeout_seconds", f"must be a positive integer, got {timeout!r}"
        )
    settings.startup_timeout_seconds = timeout
    action = config.get("on_finish_action", "delete_pod")
    if action not in ("delete_pod", "delete_succeeded_pod", "keep_pod"):
        raise _config_error(
            target,
            "on_finish_action",
            f"must be delete_pod, delete_succeeded_pod or keep_pod, got {action!r}",
        )
    settings.on_finish_action = action
    return settings


# --------------------------------------------------------------------------- pieces of a pod


def pod_resources(
    compute: dict[str, Any], fraction: float = DEFAULT_REQUEST_FRACTION
) -> dict[str, dict[str, str]]:
    """Requests and limits for one pod owning one node of the target's VM size."""
    size = lookup_vm_size(compute.get("vm_size") or "")
    cpus = compute.get("cpus") or (size.cpus if size else 1)
    memory_gb = compute.get("memory_gb") or (size.memory_gb if size else 2)
    gpus = int(compute.get("gpus") or 0)
    memory = f"{max(1, math.floor(memory_gb * 1024 * fraction))}Mi"
    requests = {"cpu": f"{max(1, math.floor(cpus * 1000 * fraction))}m", "memory": memory}
    limits = {"cpu": str(cpus), "memory": memory}
    if gpus:
        limits[GPU_RESOURCE] = str(gpus)
    return {"requests": requests, "limits": limits}


def pod_env(env: dict[str, str], declared: set[str] | frozenset[str]) -> dict[str, str]:
    """What a rank's environment sends to the pod: what mlpipe set or the step declared.

    ``env`` is the worker's environment plus the step's (``script_step``); a variable the worker
    merely inherited (same name, same value) stays behind, so no host ``PATH``, ``HOME``,
    ``VIRTUAL_ENV`` or credentials reach the pod.
    """
    kept: dict[str, str] = {}
    for name, value in env.items():
        if name in declared:
            kept[name] = value
        elif name in DROPPED_ENV_NAMES:
            continue
        elif name in RANK_ENV_NAMES or os.environ.get(name) != value:
            kept[name] = value
    return dict(sorted(kept.items()))


def image_argv(argv: list[str], python: str = IMAGE_PYTHON) -> list[str]:
    """The step's argument list with the worker's interpreter replaced by the image's."""
    if not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError("argv must be a non-empty list of strings")
    return [python, *argv[1:]]


def _dns_label(text: str, limit: int) -> str:
    label = _DNS_LABEL_RE.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return label or "step"


def pod_hostname(step_name: str, step_run_id: str, node: int) -> str:
    """A stable DNS label for node ``node`` of this step run (<= 63 characters)."""
    run = _dns_label(step_run_id.replace("-", ""), 8)
    return f"mlpipe-{_dns_label(step_name, 36)}-{run}-{node}"


def _node_groups(commands: list[Command]) -> list[list[Command]]:
    """Commands (rank order) grouped by NODE_RANK: one group per pod."""
    groups: dict[int, list[Command]] = {}
    for command in commands:
        groups.setdefault(int(command.env.get("NODE_RANK", "0")), []).append(command)
    return [groups[node] for node in sorted(groups)]


def _container_command(
    ranks: list[tuple[list[str], dict[str, str], str]], python: str = IMAGE_PYTHON
) -> tuple[list[str], dict[str, str]]:
    """(argv, container env) for one pod: the rank's own, or the launcher's for several."""
    if len(ranks) == 1:
        argv, env, _prefix = ranks[0]
        return argv, env
    shared = {
        name: value
        for name, value in ranks[0][1].items()
        if all(env.get(name) == value for _argv, env, _prefix in ranks[1:])
    }
    spec = [
        {
            "argv": argv,
            "env": {k: v for k, v in env.items() if k not in shared},
            "prefix": prefix,
        }
        for argv, env, prefix in ranks
    ]
    return [python, "-c", LAUNCHER, json.dumps(spec, sort_keys=True)], shared


def _within(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ('' for the root itself), or None when outside it."""
    path, root = posixpath.normpath(path), posixpath.normpath(root)
    if path == root:
        return ""
    prefix = root if root.endswith("/") else root + "/"
    return path[len(prefix) :] if path.startswith(prefix) else None


def _local_roots(ws: Any) -> dict[str, str]:
    roots = {}
    for name, ds in ws.config.datastores.items():
        if "://" not in ds.url or ds.url.startswith("file://"):
            roots[name] = ws.datastore(name).root
    return roots


def _data_mounts(
    launch: Launch, ws: Any, settings: KubernetesSettings
) -> tuple[list[Any], list[Any]]:
    """PVC volumes and mounts so every datastore path of the step is the same path in the pod."""
    from kubernetes.client import models as k8s

    op = launch.op
    roots = _local_roots(ws)
    writable = [str(p) for p in [launch.run_folder, *launch.output_paths.values()] if p]
    readable = sorted(set(launch.input_paths.values()))

    def owner(path: str, what: str) -> tuple[str, str]:
        best: tuple[str, str] | None = None
        for name, root in roots.items():
            rel = _within(path, root)
            if rel is not None and (best is None or len(root) > len(roots[best[0]])):
                best = (name, rel)
        if best is None:
            raise UserErrorException(
                f"step {op.step_name!r}: {what} {path!r} is in no local datastore, so no volume "
                f"can carry it into a pod of compute target {settings.target!r}"
            )
        return best

    volumes: dict[str, Any] = {}  # claim -> V1Volume
    mounts: list[Any] = []

    def volume_for(claim: Claim) -> str:
        if claim.claim not in volumes:
            name = f"datastore-{len(volumes)}"
            volumes[claim.claim] = k8s.V1Volume(
                name=name,
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=claim.claim
                ),
            )
        return volumes[claim.claim].name

    def claim_of(datastore: str) -> Claim:
        claim = settings.datastore_pvc.get(datastore)
        if claim is None:
            raise UserErrorException(
                f"step {op.step_name!r}: compute target {settings.target!r} (backend kubernetes) "
                f"has no PersistentVolumeClaim for datastore {datastore!r}; set 'datastore_pvc' in "
                "the target's config (a ReadWriteMany claim holding the datastore's folder)"
            )
        return claim

    written: set[str] = {owner(path, "output")[0] for path in writable}
    used: list[str] = []
    for path, what in [(p, "output") for p in writable] + [(p, "input") for p in readable]:
        datastore, _rel = owner(path, what)
        if datastore not in used:
            used.append(datastore)
    for datastore in used:
        claim = claim_of(datastore)
        mounts.append(
            k8s.V1VolumeMount(
                name=volume_for(claim),
                mount_path=roots[datastore],
                sub_path=claim.sub_path or None,
                read_only=None if datastore in written else True,  # a datastore only read from
            )
        )
    for path in readable:
        datastore, rel = owner(path, "input")
        if not rel or datastore not in written:
            continue  # the whole datastore, or one mounted read-only already
        if any(_within(w, path) is not None for w in writable):
            continue  # an input holding a writable folder stays on the read-write mount
        claim = claim_of(datastore)
        sub_path = posixpath.join(claim.sub_path, rel) if claim.sub_path else rel
        mounts.append(
            k8s.V1VolumeMount(
                name=volume_for(claim), mount_path=path, sub_path=sub_path, read_only=True
            )
        )
    return list(volumes.values()), mounts


def _source_mount(launch: Launch, settings: KubernetesSettings) -> tuple[list[Any], list[Any]]:
    """The step's source folder, read-only, when the target names a claim holding it."""
    from kubernetes.client import models as k8s

    claim = settings.source_pvc
    if claim is None:
        return [], []  # the image must hold the source folder at the same path
    op = launch.op
    mount_path = claim.mount_path or str(Path(op.dag.fileloc).resolve().parent)
    if _within(str(launch.source_dir), mount_path) is None:
        raise UserErrorException(
            f"step {op.step_name!r}: its source folder {str(launch.source_dir)!r} is outside "
            f"{mount_path!r}, where compute target {settings.target!r} mounts 'source_pvc'; set "
            "source_pvc.mount_path to a folder that contains it"
        )
    volume = k8s.V1Volume(
        name="source",
        persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
            claim_name=claim.claim, read_only=True
        ),
    )
    mount = k8s.V1VolumeMount(
        name="source", mount_path=mount_path, sub_path=claim.sub_path or None, read_only=True
    )
    return [volume], [mount]


def _image(op: Any, settings: KubernetesSettings) -> str:
    image = effective_image(op.compute, op.environment)
    if not image:
        raise UserErrorException(
            f"step {op.step_name!r}: no container image for compute target {settings.target!r} "
            "(backend kubernetes); set 'image' in the target's config or a docker base_image in "
            "the step's Environment"
        )
    return image


def compile_problem(compute: dict[str, Any]) -> str | None:
    """For a kubernetes target: a problem with its settings, found when compiling."""
    if compute.get("backend") != "kubernetes":
        return None
    try:
        target_settings(str(compute.get("name")), compute, "default")
    except UserErrorException as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- operators


def pod_operators(launch: Launch, ws: Any = None) -> list[Any]:
    """One ``KubernetesPodOperator`` per node of the step; builds, never contacts a cluster.

    The target's settings are those compiled into the operator's ``compute`` (the target's
    config when the DAG was compiled). ``ws`` is the ``StepWorkspace`` (read from the operator's
    recorded workspace if omitted): the datastores' roots come from it.
    """
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    op = launch.op
    if ws is None:
        from mlpipe_provider.runtime.step_context import StepWorkspace

        ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
    target = op.compute.get("name", "?")
    settings = target_settings(target, op.compute, ws.config.default_datastore)
    image = _image(op, settings)
    declared = set((op.environment or {}).get("environment_variables") or {})
    volumes, mounts = _data_mounts(launch, ws, settings)
    source_volumes, source_mounts = _source_mount(launch, settings)
    volumes += source_volumes
    mounts += source_mounts
    resources = pod_resources(op.compute, settings.request_fraction)

    groups = _node_groups(launch.commands)
    step_run_id = launch.commands[0].env.get("MLPIPE_RUN_ID", "run")
    hostnames = [pod_hostname(op.step_name, step_run_id, node) for node in range(len(groups))]
    multi_node = len(groups) > 1
    master_addr = f"{hostnames[0]}.{settings.headless_service}"

    operators = []
    for node, group in enumerate(groups):
        ranks = []
        for command in group:
            env = pod_env(command.env, declared)
            if multi_node:
                env["MASTER_ADDR"] = master_addr
            ranks.append((image_argv(command.argv, settings.python), env, command.prefix))
        argv, env = _container_command(ranks, settings.python)
        labels = {
            **settings.labels,
            "mlpipe/step-run": step_run_id,
            "mlpipe/node-rank": str(node),
        }
        if multi_node:
            labels["mlpipe/service"] = settings.headless_service
        template = k8s.V1Pod(
            spec=k8s.V1PodSpec(
                containers=[
                    k8s.V1Container(name=CONTAINER_NAME, working_dir=str(launch.source_dir))
                ]
            )
        )
        kwargs: dict[str, Any] = {}
        if settings.kubernetes_conn_id:
            kwargs["kubernetes_conn_id"] = settings.kubernetes_conn_id
        operators.append(
            KubernetesPodOperator(
                task_id=f"{op.task_id}__node{node}",
                name=hostnames[node],
                random_name_suffix=True,
                namespace=settings.namespace,
                image=image,
                image_pull_policy=settings.image_pull_policy,
                image_pull_secrets=[
                    k8s.V1LocalObjectReference(name=s) for s in settings.image_pull_secrets
                ]
                or None,
                cmds=argv[:1],
                arguments=argv[1:],
                env_vars=[k8s.V1EnvVar(name=k, value=v) for k, v in env.items()],
                container_resources=k8s.V1ResourceRequirements(**resources),
                node_selector=settings.node_selector or None,
                tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations] or None,
                service_account_name=settings.service_account_name,
                volumes=volumes,
                volume_mounts=mounts,
                full_pod_spec=template,
                hostname=hostnames[node] if multi_node else None,
                subdomain=settings.headless_service if multi_node else None,
                labels=labels,
                annotations={**settings.annotations, "mlpipe/step": op.step_name},
                active_deadline_seconds=math.ceil(launch.timeout_s) if launch.timeout_s else None,
                startup_timeout_seconds=settings.startup_timeout_seconds,
                in_cluster=settings.in_cluster,
                config_file=settings.config_file,
                cluster_context=settings.cluster_context,
                on_finish_action=settings.on_finish_action,
                durable=False,  # a retry is a new step run (new outputs folder): never reattach
                get_logs=True,
                log_events_on_failure=True,
                do_xcom_push=False,
                **kwargs,
            )
        )
    return operators


# --------------------------------------------------------------------------- running


class _TaskInstanceView:
    """The step task's TaskInstance as a pod operator sees it: its XCom pushes are dropped, so
    several pods (and their bookkeeping) never write over the step's own XComs."""

    def __init__(self, ti: Any):
        self._ti = ti

    def xcom_push(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)


def _pod_context(context: Any) -> dict[str, Any]:
    ctx = dict(context)
    ti = ctx.get("ti") or ctx.get("task_instance")
    if ti is not None:
        view = _TaskInstanceView(ti)
        ctx["ti"] = ctx["task_instance"] = view
    return ctx


def _run_pod(pod_op: Any, context: Any) -> None:
    """Create the pod, stream its logs into the task log, wait, clean up; raises on failure.

    The one place that talks to the cluster (tests replace it).
    """
    pod_op.execute_sync(_pod_context(context))


def _stop_pod(pod_op: Any) -> None:
    try:
        pod_op.on_kill()
    except Exception as exc:  # best effort: the pod may be gone already
        pod_op.log.warning("mlpipe: could not delete pod of %s: %s", pod_op.task_id, exc)


def run(launch: Launch) -> ProcessResult:
    """Run the step's pods (one per node, in parallel) to completion within this task."""
    op = launch.op
    started = time.monotonic()
    operators = pod_operators(launch)
    total = len(operators)
    target = op.compute.get("name", "?")

    def failure(index: int, exc: BaseException) -> StepFailedError:
        node = f" (node {index} of {total})" if total > 1 else ""
        return StepFailedError(
            f"step {op.step_name!r} failed: pod {operators[index].name!r}{node} on compute target "
            f"{target!r} (backend kubernetes): {type(exc).__name__}: {exc}"
        )

    op.log.info(
        "mlpipe: step %r: %d pod(s) on compute target %r, image %s",
        op.step_name,
        total,
        target,
        operators[0].image,
    )
    if total == 1:
        try:
            _run_pod(operators[0], launch.context)
        except Exception as exc:
            raise failure(0, exc) from exc
        return ProcessResult(0, time.monotonic() - started, [])

    pool = ThreadPoolExecutor(max_workers=total, thread_name_prefix="mlpipe-pod")
    futures = {
        pool.submit(_run_pod, pod_op, launch.context): i for i, pod_op in enumerate(operators)
    }
    try:
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:  # the task is being stopped: take every pod down with it
        for pod_op in operators:
            _stop_pod(pod_op)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    failed = [(futures[f], f.exception()) for f in done if f.exception() is not None]
    if failed:
        for future in pending:  # a lone rank would wait in its collective until the deadline
            _stop_pod(operators[futures[future]])
        wait(pending, timeout=60)
        pool.shutdown(wait=False, cancel_futures=True)
        index, exc = min(failed, key=lambda item: item[0])
        raise failure(index, exc) from exc
    pool.shutdown(wait=True)
    return ProcessResult(0, time.monotonic() - started, [])
