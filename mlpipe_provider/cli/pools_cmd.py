"""``mlpipe pools sync``: create or resize the Airflow pools that compiled DAGs ask for.

``mlpipe compile`` writes ``DAG.pools.json`` beside each DAG that uses GPU targets (the format of
``airflow pools import``). Sync merges every such file in a DAG folder (a pool named twice keeps
its largest size) and applies them to the Airflow metadata DB configured in this environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException


def merged_pools(dags_dir: Path) -> dict[str, dict[str, Any]]:
    pools: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(dags_dir).glob("*.pools.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UserErrorException(f"{path}: not a pools file ({exc})") from exc
        for name, pool in data.items():
            if name not in pools or pool["slots"] > pools[name]["slots"]:
                pools[name] = dict(pool)
    return pools


def sync_pools(dags_dir: str, dry_run: bool = False) -> int:
    pools = merged_pools(Path(dags_dir))
    if not pools:
        print(f"no pools files in {dags_dir}")
        return 0
    if not dry_run:
        from airflow.models.pool import Pool

        for name, pool in pools.items():
            Pool.create_or_update_pool(
                name,
                pool["slots"],
                pool.get("description", ""),
                pool.get("include_deferred", False),
            )
    for name, pool in pools.items():
        print(f"{'would set' if dry_run else 'set'} pool {name!r} to {pool['slots']} slot(s)")
    return 0
