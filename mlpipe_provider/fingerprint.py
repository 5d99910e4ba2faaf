"""Step fingerprints: one digest over everything that can change a step's result.

The material is plain JSON (so it can be logged and diffed when a step unexpectedly re-runs):
the step kind and script, the content digest of the source folder, the arguments with parameter
values of this run, the environment, the outputs' names and datastores, and the content digest
of every input. For an upstream step's output that is the digest of the bytes that step actually
wrote, so an upstream re-run that produces identical bytes keeps its downstream reused.
"""

from __future__ import annotations

import json
from typing import Any

import blake3

FINGERPRINT_SCHEME = "mlpipe-fingerprint-1"
#: bump when the way files are laid out at a transfer's destination changes: old results are
#: not reused
TRANSFER_SCHEME = "mlpipe-transfer-1"


def fingerprint_of(material: dict[str, Any]) -> str:
    canonical = json.dumps(
        {"scheme": FINGERPRINT_SCHEME, **material},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return blake3.blake3(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def resolved_arguments(arguments: list[Any], params: dict[str, Any]) -> list[Any]:
    """Arguments with each PipelineParameter placeholder carrying this run's value."""
    resolved = []
    for item in arguments:
        if isinstance(item, dict) and "param" in item:
            resolved.append({"param": item["param"], "value": params.get(item["param"])})
        else:
            resolved.append(item)
    return resolved


def _resolve(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"param"}:
        return {"param": value["param"], "value": params.get(value["param"])}
    return value


def script_settings(op: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What a script-like step's result depends on besides its source folder and inputs."""
    what = {
        "script_name": op.script_name,
        "arguments": resolved_arguments(op.arguments, params),
    }
    return process_settings(op, params, what)


def command_settings(op: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What a ``CommandStep``'s result depends on: its command (parameter values of this run
    resolved) and what every process step's depends on."""
    return process_settings(op, params, {"command": resolved_arguments(op.command, params)})


#: ParallelRunStep settings that change how fast it runs or what it logs, never its result
PARALLEL_PACE_KEYS = frozenset({"node_count", "process_count_per_node", "logging_level"})
#: ParallelRunStep settings a single mini-batch's result depends on (the rest is the gathering's)
PARALLEL_MINI_BATCH_KEYS = ("entry_script", "run_invocation_timeout", "environment_variables")


def parallel_run_settings(op: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What a ``ParallelRunStep``'s result depends on: its entry script, arguments and settings
    (this run's parameter values resolved; not the ones that only set its pace)."""
    parallel = {
        key: _resolve(value, params)
        for key, value in sorted(op.parallel.items())
        if key not in PARALLEL_PACE_KEYS
    }
    what = {"arguments": resolved_arguments(op.arguments, params), "parallel": parallel}
    return process_settings(op, params, what)


def process_settings(op: Any, params: dict[str, Any], what: dict[str, Any]) -> dict[str, Any]:
    """``what`` runs (a script and its arguments, or a command), with the settings every step
    that runs processes shares: ``params``, environment, launch shape, runtime or image."""
    settings = {
        **what,
        "step_params": {
            key: _resolve(value, params) for key, value in sorted(op.step_params.items())
        },
        "environment": op.environment,
    }
    if op.distribution:
        settings["distribution"] = {
            key: _resolve(value, params) for key, value in sorted(op.distribution.items())
        }
    compute = getattr(op, "compute", None) or {}
    if compute.get("backend", "local") == "local" and op.environment:
        from mlpipe_provider.runtime.environments import runtime_identity

        # the PyPI substitutes of conda packages and the Python that actually runs
        identity = runtime_identity(op.environment)
        if identity is not None:
            settings["runtime_environment"] = identity
    if compute.get("backend", "local") != "local":
        from mlpipe_provider.runtime.backends.images import image_identity

        settings["image"] = image_identity(compute, op.environment)
    return settings


def transfer_settings(op: Any) -> dict[str, Any]:
    """What a ``DataTransferStep``'s result depends on besides its one input's content."""
    from mlpipe_provider.contract.constants import InputKind

    settings = {
        "scheme": TRANSFER_SCHEME,
        "source_reference_type": op.source_reference_type,
        "destination_reference_type": op.destination_reference_type,
        "destination": dict(sorted(op.destination.items())),
    }
    source = op.inputs[0] if op.inputs else {}
    if source.get("kind") == InputKind.SQL:  # the statement; its result's digest is the input's
        settings["sql"] = {"datastore": source["datastore"], **source["sql"]}
    return settings


def script_reuse_has_effects(outputs: list[dict[str, Any]]) -> bool:
    """An output with a destination or a registration (``OutputFileDatasetConfig``) is copied
    and registered again when reused."""
    return any(o.get("destination") or o.get("register") for o in outputs)


def transfer_reuse_has_effects(destination: dict[str, Any]) -> bool:
    """A ``DataReference`` destination is checked, and put back, when a transfer is reused."""
    from mlpipe_provider.contract.constants import InputKind

    return destination.get("kind") == InputKind.DATA_REFERENCE


def operator_kind(op: Any) -> str:
    """The step's operator class name (part of its fingerprint); a step read from a DAG file
    without Airflow (``runtime/dag_file_steps.py``) carries the name it would have."""
    return getattr(op, "mlpipe_kind", None) or type(op).__name__


def step_material(
    op: Any, *, params: dict[str, Any], source_digest: str | None, input_digests: dict[str, str]
) -> dict[str, Any]:
    return {
        "kind": operator_kind(op),
        "settings": op.fingerprint_settings(params),
        "source": source_digest,
        "inputs": {
            spec["name"]: {
                "digest": input_digests[spec["name"]],
                "mode": spec.get("mode"),
                "path_on_compute": spec.get("path_on_compute"),
            }
            for spec in sorted(op.inputs, key=lambda s: s["name"])
        },
        "outputs": [
            {
                "name": s["name"],
                "output_name": s.get("output_name", s["name"]),
                "datastore": s["datastore"],
                "mode": s.get("mode"),
                "path_on_compute": s.get("path_on_compute"),
                # OutputFileDatasetConfig.as_upload(source_globs=...) decides what the output keeps
                **({"source_globs": s["source_globs"]} if s.get("source_globs") else {}),
                # a folder made for the script, or a path it creates (PipelineData.is_directory)
                **({"is_directory": True} if s.get("is_directory") else {}),
            }
            for s in sorted(op.outputs, key=lambda s: s["name"])
        ],
    }
