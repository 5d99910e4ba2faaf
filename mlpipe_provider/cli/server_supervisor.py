"""The process ``mlpipe server up`` leaves running: it migrates the DB, then runs Airflow's four
components as its children, in its own session and process group.

Unlike ``airflow standalone`` it starts the scheduler and the triggerer with
``--skip-serve-logs`` (the LocalExecutor's tasks write their logs to files the api-server reads
directly), so nothing listens beyond the api-server on 127.0.0.1. If any component exits, the
others are stopped too, so a half-running server never looks alive. ``mlpipe server down`` sends
SIGTERM to the whole group. Configuration comes from the environment ``server up`` sets.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def _say(message: str) -> None:
    print(f"mlpipe-server | {time.strftime('%H:%M:%S')} {message}", flush=True)


def main() -> int:
    airflow = str(Path(sys.executable).parent / "airflow")
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _say("migrating the metadata DB")
    if subprocess.call([airflow, "db", "migrate"]) != 0:  # noqa: S603 - fixed argument list
        _say("airflow db migrate failed")
        return 1
    procs: dict[str, subprocess.Popen] = {}
    for name, args in COMPONENTS.items():
        if stopping:
            break
        procs[name] = subprocess.Popen([airflow, *args])  # noqa: S603 - fixed argument list
        _say(f"started {name} (pid {procs[name].pid})")
    failed = False
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                _say(f"{name} exited with status {proc.returncode}; stopping the others")
                failed = stopping = True
                break
        else:
            time.sleep(0.5)
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _say("stopped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
