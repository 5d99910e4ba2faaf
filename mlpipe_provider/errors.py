"""Exceptions shared by the SDK, the compiler and the runtime.

They live outside ``sdk`` so that operators (which run inside Airflow and must not import the
authoring SDK) can raise the same types users catch.
"""

from __future__ import annotations


class MlpipeError(Exception):
    """Base class: every error mlpipe raises on purpose derives from it."""

    @property
    def message(self) -> str:
        """v1's exceptions (``AzureMLException`` and its subclasses) carry their text here."""
        return str(self)


class UserErrorException(MlpipeError):
    """Azure ML v1 name for an error caused by the caller's input."""


class PipelineValidationError(UserErrorException):
    """A pipeline definition cannot be compiled; ``problems`` lists every reason found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"pipeline is not valid ({len(self.problems)} problem(s)):\n{lines}")


class ComputeTargetException(MlpipeError):
    """Azure ML v1 raises this for an unknown or badly configured compute target."""


class DatastoreError(UserErrorException):
    """An unknown datastore, or a path that would leave its datastore."""


class NotSupportedError(MlpipeError, NotImplementedError):
    """A v1 name mlpipe knows but does not implement (yet): never a silent no-op."""


class StepFailedError(MlpipeError):
    """A step's script exited non-zero; the message carries the tail of its stderr."""


class ActivityFailedException(MlpipeError):
    """v1's error from ``wait_for_completion`` when a run ends Failed or Canceled.

    ``run_details`` holds the run's ``get_details()`` so a program can show which step failed and
    why without reading any log file.
    """

    def __init__(self, message: str, run_details: dict | None = None):
        super().__init__(message)
        self.run_details = dict(run_details or {})
