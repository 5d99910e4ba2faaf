"""The operator for ``DataTransferStep``: copy a file or folder between datastores.

The class only holds the step's settings; the copy is in ``mlpipe_provider.runtime.data_transfer``
and is imported inside the methods, so parsing a DAG file imports nothing but this small module.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.contract.specs import validate_destination
from mlpipe_provider.fingerprint import TRANSFER_SCHEME as TRANSFER_SCHEME  # its old home
from mlpipe_provider.fingerprint import transfer_reuse_has_effects, transfer_settings
from mlpipe_provider.operators.base import MlpipeStepOperator


class DataTransferStepOperator(MlpipeStepOperator):
    """Copy the step's one input to its destination through fsspec, streamed and digest-verified.

    ``destination`` is ``{"kind": "pipeline_data", "output": NAME}`` or
    ``{"kind": "data_reference", "output": NAME, "datastore": DS, "path_on_datastore": PATH}``;
    either way the copied data is the step's output ``NAME``. No field is templated.
    """

    ui_color = "#f6ecdb"

    def __init__(
        self,
        *,
        step_name: str,
        workspace: str,
        destination: dict[str, Any],
        inputs: list[dict[str, Any]] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        source_reference_type: str | None = None,
        destination_reference_type: str | None = None,
        compute: dict[str, Any] | None = None,
        allow_reuse: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            step_name=step_name,
            workspace=workspace,
            inputs=inputs,
            outputs=outputs,
            compute=compute,
            allow_reuse=allow_reuse,
            **kwargs,
        )
        validate_destination(self.task_id, destination)
        self.destination = dict(destination)
        self.source_reference_type = source_reference_type
        self.destination_reference_type = destination_reference_type

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        return transfer_settings(self)

    @property
    def reuse_has_effects(self) -> bool:
        """A ``DataReference`` destination is put back when it changed since it was written, so
        the transfer must start even when reused."""
        return transfer_reuse_has_effects(self.destination)

    def on_reused(self, context: Any, record: dict[str, Any]) -> None:
        if self.reuse_has_effects:
            from mlpipe_provider.runtime.data_transfer import restore_reused_destination

            restore_reused_destination(self, record)

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.data_transfer import run_transfer

        return run_transfer(self, context, reuse)
