"""The poll task of a datastore schedule's watcher DAG.

It lists the watched folder, compares it with the state kept in the datastore, records the new
state, and returns one ``{"trigger_run_id", "conf"}`` per added or changed file; the DAG maps a
``TriggerDagRunOperator`` over that list, so each file starts one run of the pipeline's DAG with
the file's path as the schedule's ``data_path_parameter_name`` parameter.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class DatastoreWatchOperator(BaseOperator):
    template_fields = ()

    def __init__(
        self,
        *,
        workspace: str,
        datastore: str,
        path_on_datastore: str | None,
        state_name: str,
        parameter: str | None,
        parameter_kind: str = "data_path",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace = workspace
        self.datastore = datastore
        self.path_on_datastore = path_on_datastore
        self.state_name = state_name
        self.parameter = parameter
        self.parameter_kind = parameter_kind

    def _value(self, path: str) -> Any:
        if self.parameter_kind == "data_path":
            return {"datastore": self.datastore, "path_on_datastore": path}
        return path

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from mlpipe_provider.runtime import datastore_watch as watch
        from mlpipe_provider.runtime.step_context import StepWorkspace

        ws = StepWorkspace.for_operator(self.workspace, self.dag.fileloc)
        store = ws.datastore(self.datastore)
        current = watch.list_files(store, self.path_on_datastore)
        previous = watch.read_state(store, self.state_name)
        changed = watch.changed_files(previous, current)
        watch.write_state(store, self.state_name, current)
        self.log.info(
            "mlpipe: %s:%s has %d file(s), %d new or changed: %s",
            self.datastore,
            self.path_on_datastore or "/",
            len(current),
            len(changed),
            changed[:20],
        )
        return [
            {
                "trigger_run_id": watch.trigger_run_id(self.state_name, path, current[path]),
                "conf": {self.parameter: self._value(path)} if self.parameter else {},
            }
            for path in changed
        ]
