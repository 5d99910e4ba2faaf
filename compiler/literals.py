"""Render plain data as Python literals for generated code.

This is the only way a value from a pipeline definition reaches a DAG file: a whitelist of types
rendered with ``repr`` (which for these types is always a literal that evaluates to the same
value), so no name, argument or path can become code.
"""

from __future__ import annotations

import math
from typing import Any


class NotLiteralError(TypeError):
    pass


def render(value: Any, indent: int = 0, width: int = 96) -> str:
    """Render ``value``; short values stay on one line, long containers break one item per line."""
    _check(value)
    flat = repr(value)
    if len(flat) + indent <= width or not isinstance(value, (list, dict)) or not value:
        return flat
    pad = " " * (indent + 4)
    if isinstance(value, list):
        items = [f"{pad}{render(v, indent + 4, width)}," for v in value]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    items = [
        f"{pad}{k!r}: {render(v, indent + 4 + len(repr(k)) + 2, width)}," for k, v in value.items()
    ]
    return "{\n" + "\n".join(items) + "\n" + " " * indent + "}"


def _check(value: Any) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotLiteralError(f"{value!r} has no literal form")
        return
    if isinstance(value, list):
        for item in value:
            _check(item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotLiteralError(f"dict keys must be strings, got {type(key).__name__}")
            _check(item)
        return
    raise NotLiteralError(f"{type(value).__name__} values cannot be written into a DAG file")
