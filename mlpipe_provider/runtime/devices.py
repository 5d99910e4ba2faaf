"""GPU device leases on one machine, so concurrent steps get distinct devices.

A lease is an exclusive ``flock`` on one small file per device index. The kernel drops it when
the holding process exits, however it exits, so a crashed step cannot leak a device. The lock
folder is per machine (devices are physical), never in a shared datastore.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path

from mlpipe_provider.errors import StepFailedError


def lock_dir() -> Path:
    folder = Path(
        os.environ.get("MLPIPE_DEVICE_LOCK_DIR")
        or Path(tempfile.gettempdir()) / f"mlpipe-gpus-{os.getuid()}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def visible_devices(configured: int) -> list[str]:
    """The worker's devices: ``$MLPIPE_GPU_DEVICES`` (e.g. "0,1") if set, else 0..configured-1."""
    override = os.environ.get("MLPIPE_GPU_DEVICES")
    if override:
        return [d.strip() for d in override.split(",") if d.strip()]
    return [str(i) for i in range(configured)]


class DeviceLease:
    """Hold ``count`` devices until ``release()`` (or until this process ends)."""

    def __init__(self, devices: list[str], handles: list[int]):
        self.devices = devices
        self._handles = handles

    @classmethod
    def acquire(
        cls,
        count: int,
        configured: int,
        *,
        step_name: str,
        timeout_s: float = 3600.0,
        poll_s: float = 0.2,
    ) -> DeviceLease:
        candidates = visible_devices(configured)
        if count > len(candidates):
            raise StepFailedError(
                f"step {step_name!r} needs {count} GPU(s) but this worker has {len(candidates)} "
                f"({', '.join(candidates) or 'none'}; set MLPIPE_GPU_DEVICES)"
            )
        deadline = time.monotonic() + timeout_s
        folder = lock_dir()
        while True:
            held: list[tuple[str, int]] = []
            for device in candidates:
                fd = os.open(folder / f"gpu-{device}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                held.append((device, fd))
                if len(held) == count:
                    return cls([d for d, _ in held], [fd for _, fd in held])
            for _, fd in held:
                os.close(fd)
            if time.monotonic() > deadline:
                raise StepFailedError(
                    f"step {step_name!r} waited {timeout_s:g} s for {count} free GPU(s)"
                )
            time.sleep(poll_s)

    def release(self) -> None:
        for fd in self._handles:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing drops the flock
        self._handles = []

    def __enter__(self) -> DeviceLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
