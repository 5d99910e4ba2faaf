"""The designer app as the plugin hands it to Airflow: built on its first request.

``plugin.py`` is imported by every Airflow process (scheduler, workers, ...), but only the API
server serves the designer; this ASGI shim keeps FastAPI routes, the compiler and the SDK out of
the others. Starlette mounts any ASGI callable, so this stands in for the app itself.
"""

from __future__ import annotations

from typing import Any


class LazyDesignerApp:
    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from mlpipe_provider.designer.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


URL_PREFIX = "/mlpipe/designer"
