"""A kubernetes target's settings: the kubernetes keys of its config, as compiled into the
operator's ``compute``, checked (``compile_problem`` runs when compiling) and defaulted."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from mlpipe_provider.errors import UserErrorException

IMAGE_PYTHON = "python3"
CONTAINER_NAME = (
    "base"  # the pod's one container (the provider's name for it): its log is the step's
)
DEFAULT_REQUEST_FRACTION = 0.9
DEFAULT_HEADLESS_SERVICE = "mlpipe-nodes"
DEFAULT_STARTUP_TIMEOUT_S = 600  # pulling a CUDA image onto a fresh GPU node takes minutes
GPU_RESOURCE = "nvidia.com/gpu"

#: never sent unless the step's Environment declares it: the device plugin picks the GPUs
DROPPED_ENV_NAMES = frozenset({"CUDA_VISIBLE_DEVICES"})

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


def compile_problem(compute: dict[str, Any]) -> str | None:
    """For a kubernetes target: a problem with its settings, found when compiling."""
    if compute.get("backend") != "kubernetes":
        return None
    try:
        target_settings(str(compute.get("name")), compute, "default")
    except UserErrorException as exc:
        return str(exc)
    return None
