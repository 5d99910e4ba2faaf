"""The compiler as the SDK sees it (``mlpipe_provider/sdk/services.py``'s ``CompilerService``).

Registered as the ``compiler`` entry point of group ``mlpipe.services``, so ``Pipeline.graph``,
``Pipeline.validate`` and the schedule and publish records reach the compiler without the SDK
importing it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from compiler.checks import collect_problems
from compiler.graph import build_graph
from compiler.lower import lower
from compiler.naming import dag_id_for
from compiler.publish import lowered_from_json, lowered_to_json
from compiler.timetables import timetable_for
from mlpipe_provider.errors import PipelineValidationError


class CompilerService:
    """Stateless: every answer is computed from its arguments."""

    def graph(self, pipeline: Any) -> Any:
        return build_graph(pipeline).graph

    def validate(self, pipeline: Any) -> list[str]:
        return collect_problems(pipeline)

    def lowered_from_json(self, data: dict[str, Any]) -> Any:
        return lowered_from_json(data)

    def lowered_json(self, pipeline: Any) -> dict[str, Any]:
        lowered = lower(pipeline)
        if lowered.problems:
            raise PipelineValidationError(lowered.problems)
        return lowered_to_json(lowered)

    def dag_id_for(self, name: str) -> str:
        return dag_id_for(name)

    def timetable_for(self, recurrence: dict[str, Any], anchor: dt.datetime) -> dict[str, Any]:
        return timetable_for(recurrence, anchor)
