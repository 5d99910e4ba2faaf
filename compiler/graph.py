"""The step graph of a pipeline, as networkx: nodes are task ids with the step name attached."""

from __future__ import annotations

from typing import Any

from compiler.lower import LoweredPipeline, lower


def build_graph(pipeline: Any) -> LoweredPipeline:
    return lower(pipeline)
