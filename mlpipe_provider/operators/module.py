"""The operator for ``ModuleStep``: a published module version's script, run from its snapshot.

It is a ``PythonScriptStepOperator`` whose ``source_directory`` is the version's snapshot in the
workspace module registry; ``module_version`` (module name and id, version and version id) is
shown in the UI and logged, and is not part of the fingerprint: two versions with the same
snapshot, script and arguments give the same result, so one reuses the other's.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.operators.script import PythonScriptStepOperator


class ModuleStepOperator(PythonScriptStepOperator):
    """Run one version of a published module (v1 ``ModuleStep``)."""

    ui_color = "#e8e2f4"

    def __init__(self, *, module_version: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module_version = dict(module_version or {})

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        info = self.module_version
        if info:
            self.log.info(
                "mlpipe: step %r runs module %r version %r (module version id %s)",
                self.step_name,
                info.get("module"),
                info.get("version"),
                info.get("module_version_id"),
            )
        return super().produce(context, reuse)
