"""Sizes and ages as people read them, for the CLI listings (store, env)."""

from __future__ import annotations

DAY = 86400.0


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def human_age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < DAY:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY:.1f}d"
