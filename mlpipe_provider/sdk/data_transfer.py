"""``DataTransferStep`` and ``DataFactoryCompute``: copy data between datastores.

In v1 an Azure Data Factory copied the data. mlpipe copies through fsspec inside the Airflow
worker, streaming and verified by digest, so ``DataFactoryCompute`` only names a target: it
registers a ``local`` target of compute type ``DataFactory`` in the workspace config.

The source is the step's one input; the destination is its one output. A ``PipelineData``
destination is an ordinary step output. A ``DataReference`` destination is a write to that path
of its datastore, and the step also publishes the copied data as an output named after the
``DataReference``, which ``get_output()`` returns for later steps to read.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.compute import (
    ComputeTarget,
    ComputeTargetProvisioningConfiguration,
)
from mlpipe_provider.sdk.data import DataReference, InputPortBinding, PipelineData
from mlpipe_provider.sdk.steps import PipelineStep

DATA_FACTORY_COMPUTE_TYPE = "DataFactory"
REFERENCE_TYPES = ("file", "directory")


class DataFactoryProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """What ``DataFactoryCompute.provisioning_configuration()`` returns."""


class DataFactoryAttachConfiguration(ComputeTargetProvisioningConfiguration):
    """What ``DataFactoryCompute.attach_configuration()`` returns (the factory is not contacted)."""


class DataFactoryCompute(ComputeTarget):
    """v1's Azure Data Factory target. Here: a ``local`` target whose copies run in the worker.

    ``ComputeTarget.create(ws, name, DataFactoryCompute.provisioning_configuration())`` and
    ``ComputeTarget.attach(ws, name, DataFactoryCompute.attach_configuration(...))`` register it;
    ``DataFactoryCompute(ws, name)`` fetches it (raising ``ComputeTargetException`` if absent).
    """

    _compute_type = DATA_FACTORY_COMPUTE_TYPE

    @staticmethod
    def provisioning_configuration(location: str | None = None) -> Any:
        return DataFactoryProvisioningConfiguration(
            backend="local", compute_type=DATA_FACTORY_COMPUTE_TYPE, location=location
        )

    @staticmethod
    def attach_configuration(
        resource_group: str | None = None,
        factory_name: str | None = None,
        resource_id: str | None = None,
    ) -> Any:
        return DataFactoryAttachConfiguration(
            backend="local",
            compute_type=DATA_FACTORY_COMPUTE_TYPE,
            resource_group=resource_group,
            factory_name=factory_name,
            resource_id=resource_id,
        )


def _unwrap(value: Any) -> Any:
    """``InputPortBinding`` around a DataReference or PipelineData: v1 accepted both forms."""
    if isinstance(value, InputPortBinding) and isinstance(
        value.bind_object, (DataReference, PipelineData)
    ):
        return value.bind_object
    return value


class DataTransferStep(PipelineStep):
    """Copy a file or a folder from one datastore to another (v1 ``DataTransferStep``).

    Every check that can name a step and a field happens when the pipeline is compiled, so a
    migrated program constructs its steps as before and sees all its mistakes at once.
    """

    _step_kind = "data_transfer"

    def __init__(
        self,
        name: str,
        source_data_reference: Any = None,
        destination_data_reference: Any = None,
        compute_target: Any = None,
        source_reference_type: str | None = None,
        destination_reference_type: str | None = None,
        allow_reuse: bool = True,
    ):
        source = source_data_reference
        destination = _unwrap(destination_data_reference)
        inputs = (
            [source] if isinstance(source, (DataReference, PipelineData, InputPortBinding)) else []
        )
        outputs: list[Any] = []
        if isinstance(destination, PipelineData):
            outputs = [destination]
        elif isinstance(destination, DataReference):
            outputs = [
                PipelineData(destination.data_reference_name, datastore=destination.datastore)
            ]
        super().__init__(name, inputs=inputs, outputs=outputs)
        if not isinstance(allow_reuse, bool):
            raise UserErrorException(
                f"step {self.name!r}: allow_reuse must be True or False, got {allow_reuse!r}"
            )
        self._allow_reuse = allow_reuse
        self.source_data_reference = source
        self.destination_data_reference = destination
        self.compute_target = compute_target
        self.source_reference_type = source_reference_type
        self.destination_reference_type = destination_reference_type

    def get_output(self) -> PipelineData:
        """The transferred data, for later steps' inputs and arguments (v1 ``get_output``)."""
        if not self._outputs:
            raise UserErrorException(
                f"step {self.name!r}: get_output() needs destination_data_reference to be a "
                f"DataReference or PipelineData, got {type(self.destination_data_reference).__name__}"
            )
        return self._outputs[0]


__all__ = [
    "REFERENCE_TYPES",
    "DataFactoryCompute",
    "DataTransferStep",
]
