"""The designer app as the plugin hands it to Airflow: built on its first request.

``plugin.py`` is imported by every Airflow process (scheduler, workers, ...), but only the API
server serves the designer; this ASGI shim keeps FastAPI routes, the compiler and the SDK out of
the others. Starlette mounts any ASGI callable, so this stands in for the app itself.
"""

from __future__ import annotations

from mlpipe_provider.lazy_asgi import LazyAsgiApp


class LazyDesignerApp(LazyAsgiApp):
    """The designer's app (``designer/app.py``), built on its first request."""

    factory = "mlpipe_provider.designer.app:create_app"


URL_PREFIX = "/mlpipe/designer"
