"""``RunDetails(run).show()``: v1's ``azureml.widgets`` view of a run's steps.

v1's widget showed a live table of a pipeline run's step runs in Jupyter and refreshed itself in
the background; ``show()`` returned at once. The same contract here:

- in Jupyter with ipywidgets: an HTML widget, refreshed by a background thread until the run ends;
- in Jupyter without ipywidgets: ``IPython.display`` HTML, updated in place the same way;
- anywhere else (a script, a terminal): the table of the run's current state is printed once and
  ``show()`` returns. It does not follow the run: v1's widget rendered nothing outside a notebook,
  so a v1 program never relied on ``show()`` blocking; ``run.wait_for_completion(show_output=True)``
  is what follows a run in a terminal.

Columns: step, status, reused-from (the step run whose result was reused), duration.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

from mlpipe_provider.sdk.run_details import duration_seconds

_TERMINAL = {"Finished", "Failed", "Canceled"}
_COLUMNS = ("Step", "Status", "Reused from", "Duration")


class RunDetails:
    """The step table of a ``PipelineRun`` (or a single ``StepRun``)."""

    def __init__(self, run_instance: Any):
        self.run_instance = run_instance
        self._thread: threading.Thread | None = None

    # --- data -----------------------------------------------------------------------------------
    def _steps(self) -> list[Any]:
        run = self.run_instance
        if hasattr(run, "_steps_in_start_order"):  # a table reads top-down in run order
            return run._steps_in_start_order()
        return [run]

    def rows(self) -> list[tuple[str, str, str, str]]:
        """One row per step: name, status (with why, when it failed), reused-from, duration."""
        rows = []
        for step in self._steps():
            record = step._record
            status = step.get_status()
            reused = record.get("reused_run_id", "") if record.get("reused") else ""
            seconds = duration_seconds(step._info.get("start"), step._info.get("end"))
            if reused:
                seconds = None  # the step did no work of its own
            rows.append((step.name, status, reused, _format_duration(seconds)))
        return rows

    def get_widget_data(self, widget_settings: dict | None = None) -> dict[str, Any]:
        """What the widget shows, as data (v1 names the keys the same way)."""
        run = self.run_instance
        children = []
        for step in self._steps():
            details = step.get_details()
            children.append(
                {
                    "run_id": step.id,
                    "name": step.name,
                    "status": step.get_status(),
                    "start_time": details.get("startTimeUtc"),
                    "end_time": details.get("endTimeUtc"),
                    "duration": _format_duration(
                        duration_seconds(step._info.get("start"), step._info.get("end"))
                    ),
                    "reused_run_id": step._record.get("reused_run_id")
                    if step._record.get("reused")
                    else None,
                    "target": details.get("target"),
                    "error": step._info.get("error"),
                }
            )
        return {
            "run_id": run.id,
            "status": run.get_status(),
            "run_properties": run.get_properties(),
            "child_runs": children,
            "children_metrics": {c.id: c.get_metrics() for c in self._steps()},
            "run_metrics": run.get_metrics(),
            "widget_settings": dict(widget_settings or {}),
        }

    # --- rendering ------------------------------------------------------------------------------
    def text(self) -> str:
        """The step table as plain text (what ``show()`` prints outside Jupyter)."""
        run = self.run_instance
        rows = self.rows()
        widths = [
            max(len(_COLUMNS[i]), *(len(r[i]) for r in rows)) if rows else len(_COLUMNS[i])
            for i in range(4)
        ]
        lines = [f"{type(run).__name__} {run.id}: {run.get_status()}"]
        lines.append("  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        for row in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if not rows:
            lines.append("(no step has been scheduled yet)")
        for step in self._steps():
            error = step._info.get("error")
            if error and step.get_status() in ("Failed", "Canceled"):
                tail = str(error).strip().splitlines()[-1]
                lines.append(f"{step.name}: {tail}")
        if not rows and run.get_status() == "Failed":
            error = run._status.get("error") if hasattr(run, "_status") else None
            if error:
                lines.append(str(error).strip())
        return "\n".join(lines)

    def html(self) -> str:
        run = self.run_instance
        head = "".join(f"<th>{html.escape(c)}</th>" for c in _COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows()
        )
        title = html.escape(f"{type(run).__name__} {run.id}: {run.get_status()}")
        return f"<div><b>{title}</b><table><tr>{head}</tr>{body}</table></div>"

    def show(self, render_lib: Any = None, widget_settings: dict | None = None) -> None:
        """Show the table; in Jupyter it keeps itself current in the background."""
        if not _in_jupyter():
            print(self.text())
            return
        try:
            import ipywidgets
            from IPython.display import display

            widget = ipywidgets.HTML(value=self.html())
            display(widget)

            def update(text: str) -> None:
                widget.value = text
        except ImportError:
            from IPython.display import HTML, display

            handle = display(HTML(self.html()), display_id=True)

            def update(text: str) -> None:
                handle.update(HTML(text))

        self._thread = threading.Thread(target=self._follow, args=(update,), daemon=True)
        self._thread.start()

    def _follow(self, update: Any) -> None:
        while True:
            time.sleep(1.0)
            try:
                update(self.html())
                if self.run_instance.get_status() in _TERMINAL:
                    return
            except Exception:  # noqa: BLE001 - a refresh error must not break the notebook
                return

    def __repr__(self) -> str:
        return f"RunDetails({self.run_instance!r})"


def _in_jupyter() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _format_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
