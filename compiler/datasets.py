"""Lowering of v1 datasets: ``FileDataset``/``TabularDataset`` inputs and ``OutputFileDatasetConfig``.

``lower.py`` calls in here for anything dataset-shaped, so the common lowering stays as it was:

* a dataset consumed by a step (``as_named_input(...)``, ``as_mount()``, or passed directly)
  becomes an input of kind ``"dataset"``: its datastore paths or globs, how it is read
  (``dataset_type``, ``tabular``) and the registered name/version it came from, if any;
* an ``OutputFileDatasetConfig`` in a step's ``arguments`` or ``outputs`` makes that step its
  producer: a ``pipeline_data``-like output with, optionally, ``source_globs``, a
  ``destination`` (copied to after the step) and ``register`` (registered on success);
* consuming one (``.as_input()``, or the config in ``inputs``) is a ``pipeline_data`` input on
  the producer's output, plus ``dataset_type`` (and ``tabular``) so the step's
  ``Run.input_datasets`` and the fingerprint know how it is read.

Problems name the step and field like every other lowering problem.
"""

from __future__ import annotations

import re
from typing import Any

from mlpipe_provider import dataset_registry
from mlpipe_provider.contract.constants import InputKind
from mlpipe_provider.dataset_files import RESERVED_TOP_FOLDERS
from mlpipe_provider.errors import MlpipeError
from mlpipe_provider.sdk.data import PipelineParameter
from mlpipe_provider.sdk.dataset import AbstractDataset, DatasetConsumptionConfig
from mlpipe_provider.sdk.output_dataset import DESTINATION_PLACEHOLDERS, OutputDatasetConfig

_IDENTIFIER_BAD = re.compile(r"[^A-Za-z0-9_]")
_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")


def is_dataset_item(item: Any) -> bool:
    return isinstance(
        item, (AbstractDataset, DatasetConsumptionConfig, OutputDatasetConfig)
    ) or is_dataset_parameter(item)


def is_dataset_parameter(item: Any) -> bool:
    """A ``PipelineParameter`` whose default is a dataset: the dataset is chosen per run."""
    return isinstance(item, PipelineParameter) and isinstance(item.default_value, AbstractDataset)


def is_output_config(item: Any) -> bool:
    return isinstance(item, OutputDatasetConfig)


# --- producers --------------------------------------------------------------------------------


def _production_sites(step: Any) -> list[tuple[str, OutputDatasetConfig]]:
    sites = [(f"outputs[{i}]", o) for i, o in enumerate(step.outputs)]
    sites += [(f"arguments[{i}]", a) for i, a in enumerate(step.arguments)]
    return [(field, item) for field, item in sites if isinstance(item, OutputDatasetConfig)]


def collect_producers(lowering: Any, steps: list[Any]) -> None:
    """Find the one producer of every output config; name unnamed ones after their step."""
    owners: dict[int, dict[str, Any]] = {}
    for step in steps:
        unnamed = 0
        for field_name, item in _production_sites(step):
            key = id(item.identity)
            owner = owners.get(key)
            if owner is not None and owner["step"] is not step:
                lowering.problem(
                    step,
                    field_name,
                    f"{type(item).__name__} {owner['name']!r} is also produced by step "
                    f"{owner['step'].name!r}; each output must have exactly one producer (a later "
                    "step consumes it with .as_input())",
                )
                continue
            if owner is None:
                name = item.name
                if name is None:
                    base = _IDENTIFIER_BAD.sub("_", step.name).strip("_") or "step"
                    name = f"{base}_output_{unnamed}"
                    unnamed += 1
                owner = {"step": step, "name": name, "field": field_name, "sites": []}
                owners[key] = owner
            owner["sites"].append(item)
    lowering.dataset_outputs = owners


def _setting(sites: list[OutputDatasetConfig], getter: Any, default: Any = None) -> Any:
    for item in sites:
        value = getter(item)
        if value not in (None, False):
            return value
    return default


def add_outputs(lowering: Any, step: Any, outputs: dict[str, dict[str, Any]]) -> None:
    """The outputs this step produces through output configs, in the order they first appear."""
    for owner in getattr(lowering, "dataset_outputs", {}).values():
        if owner["step"] is not step:
            continue
        sites, name, field_name = owner["sites"], owner["name"], owner["field"]
        if name in outputs or any(o["output_name"] == name for o in outputs.values()):
            lowering.problem(step, field_name, f"duplicate output name {name!r}")
            continue
        destination = _setting(sites, lambda s: s.destination_spec)
        datastore = lowering._datastore_for(
            step, field_name, destination["datastore"] if destination else None
        )
        upload = _setting(sites, lambda s: s if s.mode == "upload" else None)
        entry: dict[str, Any] = {
            "name": name,
            "output_name": name,
            "datastore": datastore,
            "mode": "upload" if upload is not None else "mount",
            "path_on_compute": _setting(sites, lambda s: s.source),
            "is_directory": True,  # v1 gives an OutputFileDatasetConfig a folder
        }
        globs = _setting(sites, lambda s: s.source_globs)
        if globs:
            entry["source_globs"] = list(globs)
        if destination is not None:
            path = _check_destination(lowering, step, field_name, destination["path"])
            if path is not None:
                entry["destination"] = {
                    "datastore": datastore,
                    "path": path,
                    "overwrite": bool(upload is not None and upload.overwrite),
                }
        registration = _setting(sites, lambda s: s.registration)
        if registration is not None:
            tabular = _setting(sites, lambda s: s.tabular_settings())
            entry["register"] = {
                **registration,
                "dataset_type": "tabular" if tabular else "file",
                **({"tabular": tabular} if tabular else {}),
            }
        lowering.check_compute_path(step, field_name, entry)
        outputs[name] = entry


def _check_destination(lowering: Any, step: Any, field_name: str, template: str) -> str | None:
    from mlpipe_provider.datastores import safe_relative_path

    for placeholder in _PLACEHOLDER_RE.findall(template):
        if placeholder not in DESTINATION_PLACEHOLDERS:
            lowering.problem(
                step,
                field_name,
                f"destination path {template!r}: unknown placeholder {placeholder} (mlpipe "
                f"substitutes {' and '.join(DESTINATION_PLACEHOLDERS)})",
            )
            return None
    probe = template.replace("{run-id}", "run").replace("{output-name}", "output")
    try:
        path = safe_relative_path(probe, what="destination path")
    except MlpipeError as exc:
        lowering.problem(step, field_name, str(exc))
        return None
    if path.split("/")[0] in RESERVED_TOP_FOLDERS:
        lowering.problem(
            step,
            field_name,
            f"destination path {template!r} is inside {path.split('/')[0]!r}/, where mlpipe keeps "
            "step outputs and the reuse store; choose another folder",
        )
        return None
    return template.strip("/")


# --- consumers --------------------------------------------------------------------------------


def add_input(
    lowering: Any, step: Any, field_name: str, item: Any, inputs: dict[str, dict[str, Any]]
) -> str | None:
    """Add a dataset-shaped input; returns its name (None after filing a problem)."""
    if isinstance(item, AbstractDataset):
        item = DatasetConsumptionConfig(item.default_input_name(), item)
    elif is_dataset_parameter(item):  # consumed directly, under the parameter's name
        item = DatasetConsumptionConfig(_IDENTIFIER_BAD.sub("_", item.name), item)
    elif isinstance(item, OutputDatasetConfig):
        item = item.as_input()
    dataset = item.dataset
    if isinstance(dataset, OutputDatasetConfig):
        entry = _output_input(lowering, step, field_name, item)
    else:
        entry = _dataset_input(lowering, step, field_name, item)
    if entry is None:
        return None
    lowering.check_compute_path(step, field_name, entry)
    name = entry["name"]
    existing = inputs.get(name)
    if existing is not None:
        if existing != entry:
            lowering.problem(step, field_name, f"two different inputs are named {name!r}")
        return name
    inputs[name] = entry
    return name


def _output_input(
    lowering: Any, step: Any, field_name: str, item: DatasetConsumptionConfig
) -> dict[str, Any] | None:
    config = item.dataset
    owner = getattr(lowering, "dataset_outputs", {}).get(id(config.identity))
    label = f"{type(config).__name__} {config.name or '(unnamed)'!r}"
    if owner is None:
        lowering.problem(
            step,
            field_name,
            f"{label} is consumed here but produced by no step of this pipeline (pass it in the "
            "arguments or outputs of the step that writes it)",
        )
        return None
    producer = owner["step"]
    if producer is step:
        lowering.problem(step, field_name, f"{label} is also an output of the same step")
        return None
    producer_id = lowering.task_ids[id(producer)]
    lowering.out.graph.add_edge(producer_id, lowering.task_ids[id(step)], data=owner["name"])
    entry: dict[str, Any] = {
        "name": item.given_name or owner["name"],
        "kind": InputKind.PIPELINE_DATA,
        "producer": producer_id,
        "output": owner["name"],
        "datastore": lowering._datastore_for(
            step,
            field_name,
            config.destination_spec["datastore"] if config.destination_spec else None,
        ),
        "mode": item.mode,
        "path_on_compute": item.path_on_compute,
        "dataset_type": config.dataset_type,
    }
    tabular = config.tabular_settings()
    if tabular:
        entry["tabular"] = tabular
    return entry


def _dataset_input(
    lowering: Any, step: Any, field_name: str, item: DatasetConsumptionConfig
) -> dict[str, Any] | None:
    parameter = item.dataset if is_dataset_parameter(item.dataset) else None
    dataset: AbstractDataset = parameter.default_value if parameter else item.dataset
    definition = dataset.definition
    ok = True
    if dataset.registration is not None:
        ok = _check_registered(lowering, step, field_name, dataset)
    paths = []
    for entry in definition["paths"]:
        if "local" in entry:
            lowering.problem(
                step,
                field_name,
                f"dataset input {item.name!r} is over local files of a running step; a pipeline "
                "input must be on a datastore",
            )
            return None
        if entry["datastore"] not in lowering.config.datastores:
            known = ", ".join(sorted(lowering.config.datastores)) or "none"
            lowering.problem(
                step,
                field_name,
                f"dataset input {item.name!r} reads datastore {entry['datastore']!r}, which this "
                f"workspace does not have (workspace has: {known})",
            )
            ok = False
            continue
        lowering._check_path(step, field_name, entry["path"])
        paths.append({"datastore": entry["datastore"], "path": entry["path"]})
    if not ok:
        return None
    spec: dict[str, Any] = {
        "name": item.name,
        "kind": InputKind.DATASET,
        "dataset_type": definition["type"],
        "paths": paths,
        "mode": item.mode,
        "path_on_compute": item.path_on_compute,
    }
    if "tabular" in definition:
        spec["tabular"] = dict(definition["tabular"])
    if dataset.registration is not None:
        spec["registered"] = {
            "name": dataset.name,
            "version": dataset.version,
            "id": dataset.id,
        }
    if parameter is not None:  # the default above; a run's value replaces it (dataset_param.py)
        if not lowering._register_parameter(step, field_name, parameter):
            return None
        spec["parameter"] = parameter.name
    return spec


def _check_registered(lowering: Any, step: Any, field_name: str, dataset: AbstractDataset) -> bool:
    """A registered dataset must still be registered, as that version, in the pipeline's workspace."""
    name, version = dataset.name, dataset.version
    try:
        record = dataset_registry.get(lowering.ws.directory, name, version)
    except MlpipeError as exc:
        lowering.problem(
            step,
            field_name,
            f"dataset {name!r} version {version} is not registered in this workspace ({exc})",
        )
        return False
    if record.get("id") != dataset.id or record.get("definition") != dataset.definition:
        lowering.problem(
            step,
            field_name,
            f"dataset {name!r} version {version} in this workspace is not the dataset this "
            "pipeline was built with (it was registered again, or in another workspace); get it "
            "with Dataset.get_by_name(workspace, name)",
        )
        return False
    return True


def lower_argument(
    lowering: Any,
    step: Any,
    field_name: str,
    arg: Any,
    inputs: dict[str, dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
) -> Any:
    """An argument placeholder for a dataset-shaped argument."""
    if isinstance(arg, OutputDatasetConfig):
        owner = getattr(lowering, "dataset_outputs", {}).get(id(arg.identity))
        if owner is None or owner["step"] is not step or owner["name"] not in outputs:
            return None  # the producer check filed the problem
        return {"output": owner["name"]}
    name = add_input(lowering, step, field_name, arg, inputs)
    return {"input": name} if name else None
