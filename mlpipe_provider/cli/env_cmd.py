"""``mlpipe env ls`` and ``mlpipe env gc``: look at and prune the step environments.

Environments live in ``<workspace>/envs/<hash>/`` (see ``mlpipe_provider.runtime.environments``);
gc never deletes one that a process is using or building.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlpipe_provider.humanize import DAY
from mlpipe_provider.humanize import human_age as _age
from mlpipe_provider.humanize import human_size as _human
from mlpipe_provider.runtime import environments


def _workspace_dir(workspace_dir: str | None) -> Path:
    if workspace_dir:
        return Path(workspace_dir).resolve()
    from mlpipe_provider.sdk.workspace import Workspace

    return Workspace.from_config().directory


def list_envs(workspace_dir: str | None) -> int:
    directory = _workspace_dir(workspace_dir)
    envs = environments.list_environments(directory)
    now = time.time()
    print(f"environments in {environments.envs_root(directory)}")
    print("| hash | packages | python | size | last used |")
    print("|---|---|---|---|---|")
    for env in envs:
        packages = " ".join(env["packages"] + env["pip_options"]) or "-"
        print(
            f"| {env['hash']} | {packages} | {env['python'] or '?'} "
            f"| {_human(env['size'])} | {_age(now - env['last_used'])} ago |"
        )
    total = sum(e["size"] for e in envs)
    print(f"{len(envs)} environment{'' if len(envs) == 1 else 's'}, {_human(total)}")
    return 0


def collect_garbage(
    workspace_dir: str | None, older_than_days: float, dry_run: bool = False
) -> int:
    counts = environments.collect_environments(
        _workspace_dir(workspace_dir), older_than_days * DAY, dry_run=dry_run
    )
    verb = "would free" if dry_run else "freed"
    print(
        f"{counts['deleted']} environment(s) and {counts['leftovers']} leftover build folder(s) "
        f"{verb} ({_human(counts['freed'])}); {counts['in_use']} kept because in use"
    )
    return 0
