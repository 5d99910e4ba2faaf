"""The designer's graph: what the browser edits, and the only input the file writer takes.

A graph is plain data in the v1 vocabulary (steps, their inputs and outputs by data name,
``DataReference``s, ``PipelineData``, ``PipelineParameter``s), so it can be validated by pydantic
at the HTTP boundary and compared for equality: "unchanged" means equal graphs, which is how
saving an unedited file keeps it byte for byte. Edges are derived (an input named like another
step's output), never stored, so the graph cannot disagree with itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FORMAT = 1
EDITABLE_KINDS = ("PythonScriptStep", "ModuleStep")

Scalar = str | int | float | bool


class DataRef(BaseModel):
    """An argument that is a data object or a parameter, by name: ``{"data": "prepared"}``."""

    model_config = ConfigDict(extra="forbid")
    data: str | None = None
    parameter: str | None = None


Argument = Scalar | DataRef


class Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    default: Scalar


class DataReferenceNode(BaseModel):
    """A ``DataReference``: data already in a datastore, a source node on the canvas."""

    model_config = ConfigDict(extra="forbid")
    name: str
    datastore: str
    path_on_datastore: str | None = None
    mode: str = "mount"


class DatasetNode(BaseModel):
    """A registered dataset as a step consumes it (``Dataset.get_by_name(ws, name=dataset,
    version=...).as_named_input(name)``, then ``.as_mount()``/``.as_download()``): a source node.
    ``name`` is the input name the step sees; ``version`` None means the latest when it runs."""

    model_config = ConfigDict(extra="forbid")
    name: str
    dataset: str
    version: int | None = None
    mode: Literal["direct", "mount", "download"] = "direct"
    path_on_compute: str | None = None


class PipelineDataNode(BaseModel):
    """A ``PipelineData``: the data one step produces for others (an output port)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    datastore: str | None = None


class Step(BaseModel):
    """One step. ``kind`` is the v1 class name; kinds outside ``EDITABLE_KINDS`` are shown and
    kept, but the writer cannot write them (``reason`` says why), so a graph holding one can only
    be saved unchanged."""

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    kind: str
    editable: bool = True
    reason: str | None = None
    compute_target: str | None = None
    allow_reuse: bool = True
    # PythonScriptStep
    script_name: str | None = None
    source_directory: str | None = None
    arguments: list[Argument] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    environment_variables: dict[str, str] = Field(default_factory=dict)
    # ModuleStep
    module: str | None = None
    version: str | None = None
    inputs_map: dict[str, str] = Field(default_factory=dict)
    outputs_map: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Scalar | DataRef | None] = Field(default_factory=dict)


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal[1] = FORMAT
    variable: str = "pipeline"
    description: str | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    data_references: list[DataReferenceNode] = Field(default_factory=list)
    datasets: list[DatasetNode] = Field(default_factory=list)
    pipeline_data: list[PipelineDataNode] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)

    def input_names(self, step: Step) -> list[str]:
        return list(step.inputs) if step.kind != "ModuleStep" else list(step.inputs_map.values())

    def output_names(self, step: Step) -> list[str]:
        return list(step.outputs) if step.kind != "ModuleStep" else list(step.outputs_map.values())

    def edges(self) -> list[dict[str, Any]]:
        """Producer output -> consumer input, by data name (derived, for drawing)."""
        producer: dict[str, str] = {}
        for step in self.steps:
            for name in self.output_names(step):
                producer.setdefault(name, step.id)
        refs = {d.name for d in self.data_references} | {d.name for d in self.datasets}
        edges = []
        for step in self.steps:
            for name in self.input_names(step):
                source = producer.get(name) or (f"data:{name}" if name in refs else None)
                if source is not None:
                    edges.append({"source": source, "target": step.id, "data": name})
        return edges
