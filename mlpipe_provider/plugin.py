"""The provider's Airflow plugin: what Airflow must find by name in every component.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), so installing the
package is enough: no file in the plugins folder. It registers the timetable that v1
recurrences without a built-in equivalent compile to (a serialized DAG that uses it can only be
deserialized, by the scheduler, the DAG processor, the API server, where it is registered), and
the listener that notes each reused step with the run it reused (``listeners/reuse_notes.py``),
and the FastAPI app the API server mounts at ``/mlpipe`` for v1's published-pipeline REST
routes (``rest/``; built on its first request, so other processes never import FastAPI for it).
The pipelines designer (docs/designer.md) is a FastAPI app mounted by the API server and an
entry in the UI's navigation; its app is built on its first request (``designer/mount.py``).
Keep this module light: every Airflow process imports it at start-up.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mlpipe_provider.designer.mount import URL_PREFIX as DESIGNER_PREFIX
from mlpipe_provider.designer.mount import LazyDesignerApp
from mlpipe_provider.listeners import reuse_notes
from mlpipe_provider.rest import URL_PREFIX, rest_app
from mlpipe_provider.timetables import ScheduleRecurrenceTimetable


class MlpipePlugin(AirflowPlugin):
    name = "mlpipe"
    timetables = [ScheduleRecurrenceTimetable]
    listeners = [reuse_notes]
    # Starlette tries mounts in order and "/mlpipe" also matches "/mlpipe/designer/...": the
    # designer's longer prefix must come first.
    fastapi_apps = [
        {"app": LazyDesignerApp(), "url_prefix": DESIGNER_PREFIX, "name": "mlpipe designer"},
        {"app": rest_app, "url_prefix": URL_PREFIX, "name": "mlpipe v1 pipeline REST"},
    ]
    external_views = [
        {
            "name": "Pipelines designer",
            "href": f"{DESIGNER_PREFIX}/",
            "url_route": "mlpipe-designer",
            "destination": "nav",
        }
    ]
