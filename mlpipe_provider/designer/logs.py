"""The tail of a failed step's Airflow log, read the way Airflow's own log view reads it.

Airflow's ``TaskLogReader`` asks the configured task log handler (``[logging] task_log_reader``):
the local files, the worker's log server while the file is elsewhere, or remote logging (S3,
GCS, Elasticsearch, ...) when the deployment sets it up, so the node shows the same lines as
the task's log page wherever the logs live. Only when no handler can read (a handler without
``read``, or one that fails) does the designer fall back to the local log folder.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: lines of a failed step's log shown on its node
ERROR_TAIL_LINES = 12

log = logging.getLogger(__name__)


def _lines_of(message: Any) -> list[str]:
    """One structured log message as text: its event, plus the exceptions it carries."""
    if isinstance(message, dict):
        fields = message
    else:
        fields = {"event": getattr(message, "event", str(message))}
        fields.update(getattr(message, "model_extra", None) or {})
    event = str(fields.get("event", ""))
    if event.startswith(("::group::", "::endgroup::")) or "sources" in fields:
        return []  # the reader's own notes on where the log came from
    for frame in fields.get("error_detail") or []:
        if isinstance(frame, dict):
            event += f"\n{frame.get('exc_type')}: {frame.get('exc_value')}"
    return [event]


def _tail(messages: Iterable[Any]) -> str | None:
    lines: deque[str] = deque(maxlen=ERROR_TAIL_LINES * 4)  # a long log: only its end counts
    for message in messages:
        lines.extend(_lines_of(message))
    text = "\n".join(lines).rstrip()
    return "\n".join(text.splitlines()[-ERROR_TAIL_LINES:]) or None


def read_with_airflow(ti: Any) -> str | None:
    """Through ``TaskLogReader`` (``ti`` with its ``dag_run`` loaded); None if it cannot read."""
    from airflow.utils.log.log_reader import TaskLogReader

    reader = TaskLogReader()
    if not reader.supports_read:
        return None
    stream, _ = reader.read_log_chunks(ti, ti.try_number, {"download_logs": True})
    return _tail(stream)


def read_local(dag_id: str, run_id: str, task_id: str) -> str | None:
    """The last attempt's file under ``[logging] base_log_folder`` (JSON lines: their events)."""
    from airflow.configuration import conf

    folder = Path(conf.get("logging", "base_log_folder"))
    found = sorted(
        (folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}").glob(
            "attempt=*.log"
        )
    )
    if not found:
        return None
    entries: list[Any] = []
    for raw in found[-1].read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = {"event": raw}
        entries.append(entry if isinstance(entry, dict) else {"event": raw})
    return _tail(entries)


def error_tail(ti: Any) -> tuple[str | None, str]:
    """The tail and where it came from: ``airflow`` (the log reader) or ``local`` (fallback)."""
    try:
        text = read_with_airflow(ti)
    except Exception:  # noqa: BLE001 - a handler that cannot read: fall back, but say why
        log.warning("Airflow's log reader failed for %s", ti.task_id, exc_info=True)
        text = None
    else:
        if text is not None:
            return text, "airflow"
    return read_local(ti.dag_id, ti.run_id, ti.task_id), "local"
