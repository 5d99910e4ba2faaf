"""Run a step's processes: argument lists (never a shell), output streamed into the task log.

One step may be several processes (a distributed job); they start together, share one deadline,
and if any fails the others are stopped and the error carries the failing one's stderr tail.
Each process gets its own process group so a timeout takes down everything it started.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlpipe_provider.errors import StepFailedError
from mlpipe_provider.runtime.cancel import stoppable

STDERR_TAIL_LINES = 30
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up before any fork: the child may only call C, not import."""
    if os.uname().sysname != "Linux":
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A pre-exec hook that makes the kernel SIGKILL the step when its task process dies.

    Steps run in their own session (so a timeout can kill their whole group), which also means
    a SIGKILLed worker would leave them running, writing into an attempt folder nothing will
    ever reference. With PDEATHSIG the step dies with its worker, as it would on a lost machine.
    """
    if _PRCTL is None:
        return None
    prctl = _PRCTL

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the hook ran
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


@dataclass
class ProcessResult:
    returncode: int
    duration_s: float
    stderr_tail: list[str]


@dataclass
class Command:
    argv: list[str]
    env: dict[str, str]
    prefix: str = ""  # put before each log line, e.g. "[rank 1] "


def _pump(stream, emit: Callable[[str], None], prefix: str, tail: collections.deque | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        emit(prefix + line)
        if tail is not None:
            tail.append(line)
    stream.close()


def run_group(
    commands: list[Command],
    *,
    cwd: Path,
    log_out: Callable[[str], None],
    log_err: Callable[[str], None],
    timeout_s: float | None,
    step_name: str,
    label: str | None = None,
) -> ProcessResult:
    """Run every command to completion; raise ``StepFailedError`` on a failure or the timeout."""
    for command in commands:
        if not command.argv or not all(isinstance(a, str) for a in command.argv):
            raise TypeError("argv must be a non-empty list of strings")
    started = time.monotonic()
    procs: list[subprocess.Popen] = []
    tails: list[collections.deque[str]] = []
    pumps: list[threading.Thread] = []
    try:
        for command in commands:
            proc = subprocess.Popen(  # noqa: S603 - a list, never a shell
                command.argv,
                cwd=cwd,
                env=command.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - C call only
            )
            tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
            procs.append(proc)
            tails.append(tail)
            for stream, emit, keep in ((proc.stdout, log_out, None), (proc.stderr, log_err, tail)):
                pump = threading.Thread(
                    target=_pump, args=(stream, emit, command.prefix, keep), daemon=True
                )
                pump.start()
                pumps.append(pump)
        with stoppable(lambda: [_kill_group(p) for p in procs]):
            failed = _wait_all(procs, started, timeout_s)
    except BaseException:
        for proc in procs:
            _kill_group(proc)
        raise
    for pump in pumps:
        pump.join(timeout=10)
    duration = time.monotonic() - started
    what = label or commands[0].argv[0]
    if failed == "timeout":
        raise StepFailedError(
            f"step {step_name!r} timed out after {timeout_s:g} s (max_run_duration_seconds) and was killed"
        )
    if failed is not None:
        index = failed
        rank = f" (process {index} of {len(procs)})" if len(procs) > 1 else ""
        detail = "\n".join(tails[index]) or "(no stderr output)"
        raise StepFailedError(
            f"step {step_name!r} failed: {what}{rank} exited with code {procs[index].returncode}; "
            f"last lines of stderr:\n{detail}"
        )
    return ProcessResult(0, duration, list(tails[0]))


def _wait_all(
    procs: list[subprocess.Popen], started: float, timeout_s: float | None
) -> int | str | None:
    """Index of the first process to fail (the rest are stopped), "timeout", or None."""
    while True:
        running = False
        for index, proc in enumerate(procs):
            code = proc.poll()
            if code is None:
                running = True
            elif code != 0:
                for other in procs:
                    _kill_group(other)
                return index
        if not running:
            return None
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            for proc in procs:
                _kill_group(proc)
            return "timeout"
        time.sleep(0.05)


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
    """One process: ``run_group`` with a single command."""
    return run_group(
        [Command(argv, env)],
        cwd=cwd,
        log_out=log_out,
        log_err=log_err,
        timeout_s=timeout_s,
        step_name=step_name,
        label=label,
    )


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the process and everything it started; the group goes even if the leader exited."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
