"""Which container image a step runs in, and what the Docker engine knows about it.

Shared by the compiler (an image missing from a reachable engine is a compile-time problem), the
fingerprint (the image is part of what a containerised step's result depends on) and the docker
backend. Imports nothing heavy: the ``docker`` SDK is imported only when an engine is asked.

The image of a step is, in order:

1. the step's ``Environment.docker.base_image``, unless it is Azure ML's default base image
   (v1 programs set ``docker.enabled = True`` with ``DEFAULT_CPU_IMAGE`` to mean "the usual
   image", and those images are not what mlpipe's compute targets run);
2. the compute target's ``image``;
3. Azure ML's default image if the environment named one and the target names none.
"""

from __future__ import annotations

import os
from typing import Any

DEFAULT_DOCKER_URL = "unix://var/run/docker.sock"
DOCKER_HOST_ENV = "DOCKER_HOST"
#: seconds the compiler and the fingerprint wait for an engine before treating it as unreachable
ENGINE_PROBE_TIMEOUT_S = 3
#: "never" (default): the image must already be on the engine; "missing": pull it when absent;
#: "always": pull before every run
PULL_POLICIES = ("never", "missing", "always")

# Azure ML's stock base images (``azureml.core.runconfig.DEFAULT_CPU_IMAGE`` and friends).
AZUREML_DEFAULT_IMAGE_PREFIX = "mcr.microsoft.com/azureml/"


def is_azureml_default_image(image: str | None) -> bool:
    return bool(image) and str(image).startswith(AZUREML_DEFAULT_IMAGE_PREFIX)


def effective_image(
    compute: dict[str, Any] | None, environment: dict[str, Any] | None
) -> str | None:
    """The image a containerised step runs in, or None when neither the step nor its target names one."""
    target_image = (compute or {}).get("image") or None
    env_image = (environment or {}).get("image") or None
    if env_image and not (is_azureml_default_image(env_image) and target_image):
        return str(env_image)
    return str(target_image) if target_image else None


def docker_url(compute: dict[str, Any] | None) -> str:
    """The engine a docker step talks to: the target's ``docker_url``, ``$DOCKER_HOST``, the socket."""
    return (
        (compute or {}).get("docker_url") or os.environ.get(DOCKER_HOST_ENV) or DEFAULT_DOCKER_URL
    )


def pull_policy(compute: dict[str, Any] | None) -> str:
    policy = str((compute or {}).get("pull") or "never")
    if policy not in PULL_POLICIES:
        raise ValueError(f"pull must be one of {', '.join(PULL_POLICIES)}, got {policy!r}")
    return policy


def _client(url: str, timeout: float = ENGINE_PROBE_TIMEOUT_S) -> Any:
    """A ``docker.APIClient`` that answered a ping, or None when the engine is unreachable."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError:  # pragma: no cover - the Docker provider depends on it
        return None
    try:
        client = docker.APIClient(base_url=url, version="auto", timeout=timeout)
        client.ping()
        return client
    except (DockerException, OSError, ValueError):  # requests' errors are OSErrors
        return None


def engine_reachable(url: str) -> bool:
    client = _client(url)
    if client is None:
        return False
    client.close()
    return True


def inspect_image(image: str, url: str) -> tuple[bool, str | None]:
    """``(engine reachable, image id or None if the engine does not have it)``."""
    client = _client(url)
    if client is None:
        return False, None
    try:
        from docker.errors import ImageNotFound

        try:
            return True, str(client.inspect_image(image)["Id"])
        except ImageNotFound:
            return True, None
    except Exception:  # noqa: BLE001 - an engine that fails the inspection: treat as unreachable
        return False, None
    finally:
        client.close()


def compile_problem(compute: dict[str, Any]) -> str | None:
    """For a docker target naming an image: a problem if a reachable engine does not have it.

    An engine that cannot be reached (the compiling machine may not be a worker) defers the check
    to run time, as does ``"pull": "missing"|"always"`` (the image may come from a registry).
    """
    if compute.get("backend") != "docker":
        return None
    image = compute.get("image")
    try:
        policy = pull_policy(compute)
    except ValueError as exc:
        return f"compute target {compute.get('name')!r}: {exc}"
    if not image or policy != "never":
        return None
    url = docker_url(compute)
    reachable, image_id = inspect_image(str(image), url)
    if reachable and image_id is None:
        return (
            f"image {image!r} of compute target {compute.get('name')!r} is not on the Docker engine "
            f'at {url}; build or load it there (see docs/backends.md), or set "pull": "missing" '
            "on the target to pull it from a registry"
        )
    return None


def image_identity(
    compute: dict[str, Any] | None, environment: dict[str, Any] | None
) -> dict[str, Any]:
    """What the fingerprint records about a containerised step's image.

    For the docker backend this includes the engine's image id, so rebuilding a tag (``:latest``,
    ``local/x:1``) re-runs the steps that used it; ``None`` when the engine cannot be asked.
    """
    compute = compute or {}
    image = effective_image(compute, environment)
    identity: dict[str, Any] = {"name": image}
    if image and compute.get("backend") == "docker":
        identity["id"] = inspect_image(image, docker_url(compute))[1]
    return identity
