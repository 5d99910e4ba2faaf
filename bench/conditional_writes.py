"""Benchmark: the output store's conditional writes on S3 and GCS, against the check-then-write
fallback, on the emulators the tests use (moto's S3 server, fake-gcs-server).

Run from the repository root:

    uv run python bench/conditional_writes.py [--writes 50] [--rounds 30] [--racers 8] [--check]

For each service it opens one datastore (registered the way tests/object_stores.py does: a
config entry naming an Airflow connection) and measures two implementations of the same
interface (``hooks/object_store.py``) on the same filesystem object, interleaved so a noisy
machine hits both alike:

- **conditional**: what mlpipe uses, the service's own preconditions (S3 ``If-None-Match: *`` /
  ``If-Match``, GCS ``ifGenerationMatch``): ``S3Objects``, ``GcsObjects``;
- **fallback**: ``FsspecObjects``, look then write then read back, what a datastore with
  ``"conditional_writes": false`` gets (an S3-compatible service without conditional requests).

Per write: the median time of ``put_if_absent`` on a fresh key and of ``put_if_match`` replacing
the object just written (``--writes`` each). Under racing writers: ``--rounds`` rounds in which
``--racers`` threads, released together by a barrier, each try ``put_if_absent`` on one fresh key
(a new entry, or a free lease), then each try ``put_if_match`` with the one etag they all read
(breaking an expired lease). Exactly one must win each; a round with more than one winner (or
none) is a wrong outcome. ``--check`` exits 1 when the conditional implementation has any.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _path in (REPO, REPO / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from object_stores import GcsServer, S3Server, fake_gcs_binary, moto_binary  # noqa: E402


def _ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:.1f}" if seconds else "-"


def _race(racers: int, work: Any) -> list[Any]:
    barrier = threading.Barrier(racers)
    results: list[Any] = [None] * racers

    def run(index: int) -> None:
        barrier.wait(timeout=60)
        results[index] = work(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def measure(objects: Any, prefix: str, writes: int, rounds: int, racers: int) -> dict[str, Any]:
    """Per-write times and wrong race outcomes of one ConditionalObjects on one prefix."""
    absent, match = [], []
    for i in range(writes):
        path = f"{prefix}/seq/{i}.json"
        start = time.perf_counter()
        etag = objects.put_if_absent(path, b'{"n": 0}')
        absent.append(time.perf_counter() - start)
        assert etag is not None, "a fresh key must be created"
        start = time.perf_counter()
        assert objects.put_if_match(path, b'{"n": 1}', etag) is not None
        match.append(time.perf_counter() - start)
    wrong_create = wrong_replace = 0
    for r in range(rounds):
        path = f"{prefix}/race/{r}.json"
        created = _race(racers, lambda i, p=path: objects.put_if_absent(p, f"c{i}".encode()))
        wrong_create += sum(e is not None for e in created) != 1
        current = objects.read(path)
        if current is None:
            wrong_replace += 1
            continue
        replaced = _race(
            racers, lambda i, p=path, e=current[1]: objects.put_if_match(p, f"r{i}".encode(), e)
        )
        wrong_replace += sum(e is not None for e in replaced) != 1
    return {
        "absent": _ms(absent),
        "match": _ms(match),
        "wrong_create": wrong_create,
        "wrong_replace": wrong_replace,
    }


def open_objects(server: Any, workspace: Path) -> tuple[Any, Any, str]:
    """(conditional objects, fallback objects, a fresh prefix) on a new bucket of ``server``."""
    from mlpipe_provider.config import load_config
    from mlpipe_provider.datastores import open_datastore
    from mlpipe_provider.hooks.object_store import FsspecObjects, conditional_objects
    from mlpipe_provider.sdk import Workspace

    os.chdir(workspace)  # an embedded workspace of its own, in the temporary folder
    ws = Workspace.from_config()
    server.register(ws, f"bench_{server.kind}")
    access = open_datastore(ws._dir, load_config(ws._dir), f"bench_{server.kind}")
    conditional = conditional_objects(access)
    assert conditional.strict, type(conditional)
    fallback = FsspecObjects(access.fs, access.name, access.options)
    return conditional, fallback, access.full_path(f"bench-{uuid.uuid4().hex[:8]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--racers", type=int, default=8)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)

    servers = []
    if moto_binary() is not None:
        servers.append(S3Server(moto_binary()))
    if fake_gcs_binary() is not None:
        servers.append(GcsServer(fake_gcs_binary()))
    if not servers:
        print("no emulator installed (uv sync installs moto[server] and fake-gcs-server)")
        return 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="mlpipe-bench-cond-") as folder:
        for server in servers:
            server.start()
            try:
                conditional, fallback, prefix = open_objects(server, Path(folder))
                for mode, objects in (("conditional", conditional), ("fallback", fallback)):
                    found = measure(
                        objects, f"{prefix}/{mode}", args.writes, args.rounds, args.racers
                    )
                    rows.append((server.kind, mode, type(objects).__name__, found))
            finally:
                server.close()

    print(
        f"\n{args.writes} writes each; {args.rounds} rounds of {args.racers} racing writers; "
        "times are medians per call\n"
    )
    print(
        "| service | mode | implementation | create-if-absent ms | replace-if-match ms "
        "| wrong creates | wrong replaces |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    failed = False
    for kind, mode, name, found in rows:
        print(
            f"| {kind} | {mode} | `{name}` | {found['absent']} | {found['match']} "
            f"| {found['wrong_create']}/{args.rounds} | {found['wrong_replace']}/{args.rounds} |"
        )
        if mode == "conditional" and (found["wrong_create"] or found["wrong_replace"]):
            failed = True
    if args.check and failed:
        print("FAILED: the conditional implementation let more than one writer win")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
