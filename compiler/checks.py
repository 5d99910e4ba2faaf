"""Pipeline validation: every problem the compiler refuses, each naming the step and the field."""

from __future__ import annotations

from typing import Any

from compiler.lower import lower


def collect_problems(pipeline: Any) -> list[str]:
    return list(lower(pipeline).problems)
