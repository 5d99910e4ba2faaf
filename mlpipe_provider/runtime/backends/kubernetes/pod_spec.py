"""What a step's pods are: resources, environment, command, data mounts, one pod per node.

Builds, never contacts a cluster, so every pod can be checked anywhere.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import secrets
import string
from dataclasses import dataclass
from importlib import resources as _resources
from pathlib import Path
from typing import Any

from mlpipe_provider.compute_sizes import lookup_vm_size
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.images import effective_image
from mlpipe_provider.runtime.backends.kubernetes.settings import (
    CONTAINER_NAME,
    DEFAULT_REQUEST_FRACTION,
    DROPPED_ENV_NAMES,
    GPU_RESOURCE,
    IMAGE_PYTHON,
    Claim,
    KubernetesSettings,
    target_settings,
)
from mlpipe_provider.runtime.cancel import TaskIdentity, label_value
from mlpipe_provider.runtime.distributed import step_environment
from mlpipe_provider.runtime.process import Command

#: the per-node launcher's source (``launcher.py``), passed to the image's python with ``-c``
LAUNCHER = (
    _resources.files("mlpipe_provider.runtime.backends.kubernetes")
    .joinpath("launcher.py")
    .read_text(encoding="utf-8")
)

_DNS_LABEL_RE = re.compile(r"[^a-z0-9-]+")
POD_NAME_MAX_LENGTH = 63


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
    return dict(sorted(step_environment(env, declared, never=DROPPED_ENV_NAMES).items()))


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


# --------------------------------------------------------------------------- pods


@dataclass
class StepPods:
    """A step's pods, one per node (node order), and the target settings they were built from
    (``launch`` reads how to reach the cluster and what to do with finished pods there)."""

    settings: KubernetesSettings
    image: str
    pods: list[Any]


def pod_name(hostname: str) -> str:
    """The node's hostname with a random suffix: each step run's pods are new objects, never a
    name a deleted or leftover pod still holds (<= 63 characters, as the provider's)."""
    suffix = "-" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    return hostname[: POD_NAME_MAX_LENGTH - len(suffix)].strip("-") + suffix


def build_pods(launch: Launch, ws: Any = None) -> StepPods:
    """One ``V1Pod`` per node of the step; builds, never contacts a cluster.

    The target's settings are those compiled into the operator's ``compute`` (the target's
    config when the DAG was compiled). ``ws`` is the ``StepWorkspace`` (read from the operator's
    recorded workspace if omitted): the datastores' roots come from it. A pod's namespace is
    the target's ``namespace``, or ``None`` for ``launch`` to fill from the connection.
    """
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
    identity = TaskIdentity.of(op, launch.context)
    identity_labels = identity.labels() if identity else {}
    step_run_id = launch.commands[0].env.get("MLPIPE_RUN_ID", "run")
    hostnames = [pod_hostname(op.step_name, step_run_id, node) for node in range(len(groups))]
    multi_node = len(groups) > 1
    master_addr = f"{hostnames[0]}.{settings.headless_service}"
    pull_secrets = [k8s.V1LocalObjectReference(name=s) for s in settings.image_pull_secrets]

    pods = []
    for node, group in enumerate(groups):
        ranks = []
        for command in group:
            env = pod_env(command.env, declared)
            if multi_node:
                env["MASTER_ADDR"] = master_addr
            rank_argv = (
                image_argv(command.argv, settings.python) if launch.runs_python else command.argv
            )
            ranks.append((list(rank_argv), env, command.prefix))
        argv, env = _container_command(ranks, settings.python)
        labels = {
            **settings.labels,
            **identity_labels,
            "mlpipe/step-run": label_value(step_run_id),
            "mlpipe/node-rank": str(node),
        }
        if multi_node:
            labels["mlpipe/service"] = settings.headless_service
        container = k8s.V1Container(
            name=CONTAINER_NAME,
            image=image,
            image_pull_policy=settings.image_pull_policy,
            command=argv[:1],  # the image's python: never a shell
            args=argv[1:],
            env=[k8s.V1EnvVar(name=k, value=v) for k, v in env.items()],
            resources=k8s.V1ResourceRequirements(**resources),
            volume_mounts=list(mounts) or None,
            working_dir=str(launch.source_dir),
        )
        pods.append(
            k8s.V1Pod(
                api_version="v1",
                kind="Pod",
                metadata=k8s.V1ObjectMeta(
                    name=pod_name(hostnames[node]),
                    namespace=settings.namespace,
                    labels=labels,
                    annotations={**settings.annotations, "mlpipe/step": op.step_name},
                ),
                spec=k8s.V1PodSpec(
                    containers=[container],
                    restart_policy="Never",  # a failed step is retried by Airflow, as a new run
                    node_selector=settings.node_selector or None,
                    tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations] or None,
                    service_account_name=settings.service_account_name,
                    image_pull_secrets=pull_secrets or None,
                    volumes=list(volumes) or None,
                    hostname=hostnames[node] if multi_node else None,
                    subdomain=settings.headless_service if multi_node else None,
                    active_deadline_seconds=(
                        math.ceil(launch.timeout_s) if launch.timeout_s else None
                    ),
                ),
            )
        )
    return StepPods(settings, image, pods)


def step_pods(launch: Launch, ws: Any = None) -> list[Any]:
    """The step's ``V1Pod``s, one per node (``build_pods`` without the settings)."""
    return build_pods(launch, ws).pods
