"""Experiment tracking of pipeline runs in MLflow (docs/tracking.md).

This package is imported by the step protocol on every step, so it imports nothing heavy: MLflow
itself is imported only when a tracking URI is configured. Tracking is best effort by design: a
step's result is its outputs and its store entry, and a tracking server that is down, slow or
misconfigured must never fail or retry a step, so every error ends here as a warning.
"""

from __future__ import annotations

import os
from typing import Any

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def configured_tracking_uri(config: Any) -> str | None:
    """``$MLFLOW_TRACKING_URI`` first (a worker may reach the server under another name than
    the user's machine), then the workspace config's ``mlflow_tracking_uri``."""
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    if uri:
        return uri
    return (getattr(config, "mlflow_tracking_uri", None) or "").strip() or None


def track_step(op: Any, context: Any, record: dict[str, Any], ws: Any = None) -> None:
    """Record a finished or reused step (and its pipeline run) in MLflow; never raises. On
    success the record gains ``mlflow_run_id`` (and ``mlflow_run_url``, the task's link)."""
    log = getattr(op, "log", None)
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    if not uri:
        try:
            if ws is None:
                from mlpipe_provider.runtime.step_context import StepWorkspace

                ws = StepWorkspace.for_operator(op.workspace, op.dag.fileloc)
            uri = configured_tracking_uri(ws.config)
        except Exception:  # noqa: BLE001 - no readable config means nothing configured
            return
    if not uri:
        return
    try:
        from mlpipe_provider.tracking.mlflow import log_step_run

        record.update(log_step_run(uri, op, context, record, ws) or {})
    except ImportError as exc:
        if log is not None:
            log.warning(
                "mlpipe: MLflow tracking is configured but %s; install mlpipe[mlflow] on the "
                "workers",
                exc,
            )
    except Exception as exc:  # noqa: BLE001 - tracking must never fail a step
        if log is not None:
            log.warning(
                "mlpipe: MLflow tracking of step %r skipped: %s: %s",
                getattr(op, "step_name", "?"),
                type(exc).__name__,
                _redact(str(exc)),
            )


def mirror_model(config: Any, record: dict[str, Any], source: str, log: Any = None) -> None:
    """With MLflow configured, register ``record`` in MLflow's model registry too; never raises
    (the mlpipe registry is the one steps read, so MLflow's copy is best effort like tracking)."""
    import logging

    log = log or logging.getLogger("mlpipe.models")
    uri = configured_tracking_uri(config)
    if not uri:
        return
    try:
        from mlpipe_provider.tracking.mlflow import register_model_version

        number = register_model_version(uri, record, source)
        log.info("mlpipe: model %s mirrored to MLflow as version %s", record["id"], number)
    except ImportError as exc:
        log.warning("mlpipe: MLflow tracking is configured but %s; model not mirrored", exc)
    except Exception as exc:  # noqa: BLE001 - the registration itself succeeded
        log.warning(
            "mlpipe: model %s not mirrored to MLflow: %s: %s",
            record.get("id"),
            type(exc).__name__,
            _redact(str(exc)),
        )


def _redact(text: str) -> str:
    """Drop credentials a URI in an error message may carry (``https://user:token@host``)."""
    import re

    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)[:2000]
