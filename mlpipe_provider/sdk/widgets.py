"""Placeholder for v1's ``azureml.widgets.RunDetails``: replaced by the run-API work."""

from __future__ import annotations

from typing import Any


class RunDetails:
    """Placeholder for v1's ``azureml.widgets.RunDetails``: replaced by the run-API work."""

    def __init__(self, run_instance: Any) -> None:
        self.run_instance = run_instance
