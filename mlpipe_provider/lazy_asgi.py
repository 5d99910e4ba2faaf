"""An ASGI app that builds the real one on its first request.

The provider's plugin is imported by every Airflow process (scheduler, workers, DAG processor),
but only the API server serves the plugin's FastAPI apps. Mounting this shim instead of the app
keeps FastAPI routes, and for the designer the compiler and the SDK, out of every other process.
Starlette mounts any ASGI callable, so the shim stands in for the app itself. The app is named by
an import string (``"module:function"``), resolved once, under a lock, when the first request
arrives: the plugin's own imports stay on the run-time side of the layer contracts.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any


class LazyAsgiApp:
    #: ``"package.module:function"`` returning the ASGI app; set by each subclass
    factory: str = ""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                module, function = self.factory.split(":")
                self._app = getattr(importlib.import_module(module), function)()
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        app = self._app or self._build()
        await app(scope, receive, send)
