"""Run a step's process: an argument list (never a shell), output streamed into the task log."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlpipe_provider.errors import StepFailedError

STDERR_TAIL_LINES = 30


@dataclass
class ProcessResult:
    returncode: int
    duration_s: float
    stderr_tail: list[str]


def _pump(stream, emit: Callable[[str], None], tail: collections.deque | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        emit(line)
        if tail is not None:
            tail.append(line)
    stream.close()


def run_process(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_out: Callable[[str], None],
    log_err: Callable[[str], None],
    timeout_s: float | None,
    step_name: str,
    label: str | None = None,
) -> ProcessResult:
    """Run ``argv``; raise ``StepFailedError`` with the stderr tail on a non-zero exit or timeout.

    The child gets its own process group so a timeout (or the task being killed) takes down
    everything the script started, not just the interpreter.
    """
    if not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError("argv must be a non-empty list of strings")
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - a list, never a shell
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, log_out, None), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, log_err, tail), daemon=True),
    ]
    for pump in pumps:
        pump.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    except BaseException:
        _kill_group(proc)
        raise
    for pump in pumps:
        pump.join(timeout=10)
    duration = time.monotonic() - started
    if timed_out:
        raise StepFailedError(
            f"step {step_name!r} timed out after {timeout_s:g} s (max_run_duration_seconds) and was killed"
        )
    if proc.returncode != 0:
        detail = "\n".join(tail) or "(no stderr output)"
        raise StepFailedError(
            f"step {step_name!r} failed: {label or argv[0]} exited with code "
            f"{proc.returncode}; last lines of stderr:\n{detail}"
        )
    return ProcessResult(proc.returncode, duration, list(tail))


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    except ProcessLookupError:
        pass
