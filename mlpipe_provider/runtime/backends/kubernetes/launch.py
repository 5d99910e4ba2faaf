"""Running a step's pods from inside its Airflow task, through the provider's ``KubernetesHook``
and its ``CoreV1Api`` (the provider's own layering: operator -> hook -> client; no operator runs
inside ours): create each pod, stream its log into the task log, wait until it ends, delete it.

Why not ``KubernetesPodOperator.execute_sync``: Airflow deprecates running one operator inside
another (it will become an error), and the operator would push XComs and set labels of its own.
Why not the provider's ``PodManager``: following a log is private API there, and its waits cannot
be interrupted, which a multi-node step needs (the first failure must stop the other pods at
once). Its public ``detect_pod_terminate_early_issues`` is used (an image that can never be
pulled fails the step now instead of at the startup timeout), and the phases are its
``PodPhase``'s.

The pods of a multi-node step run in parallel threads; the first failure deletes the others (a
lone rank would wait in its collective until the deadline) and becomes a ``StepFailedError``
naming the step, the pod and the node. Killing the task deletes them too (``cancel.stoppable``);
the pods a SIGKILLed worker left are deleted by the task's next attempt (``remove_leftovers``).
"""

from __future__ import annotations

import collections
import contextlib
import math
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import StepFailedError
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.kubernetes.pod_spec import StepPods, build_pods
from mlpipe_provider.runtime.backends.kubernetes.settings import (
    CONTAINER_NAME,
    KubernetesSettings,
)
from mlpipe_provider.runtime.cancel import TaskIdentity, stoppable
from mlpipe_provider.runtime.process import STDERR_TAIL_LINES, ProcessResult

__all__ = ["remove_leftovers", "run"]

#: how often a pod's phase is read while it starts and runs (tests lower it)
POLL_S = 2.0
_INCLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z ?")

PENDING, SUCCEEDED, FAILED, UNKNOWN = "Pending", "Succeeded", "Failed", "Unknown"
TERMINAL = frozenset({SUCCEEDED, FAILED})


# --------------------------------------------------------------------------- the cluster


def _hook(settings: KubernetesSettings) -> Any:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(
        conn_id=settings.kubernetes_conn_id,
        in_cluster=settings.in_cluster,
        config_file=settings.config_file,
        cluster_context=settings.cluster_context,
    )


def _core_v1(settings: KubernetesSettings) -> Any:
    """The cluster's ``CoreV1Api``, from the provider's ``KubernetesHook`` (tests replace it)."""
    return _hook(settings).core_v1_client


def _namespace(settings: KubernetesSettings) -> str:
    """The target's namespace, else the connection's, else the worker's own, else ``default``
    (the order ``KubernetesPodOperator`` uses, so targets keep their meaning)."""
    if settings.namespace:
        return settings.namespace
    namespace = _hook(settings).get_namespace()
    if not namespace and _INCLUSTER_NAMESPACE.exists():
        namespace = _INCLUSTER_NAMESPACE.read_text().strip()
    return namespace or "default"


def _phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status is not None else None


def _is_gone(exc: BaseException) -> bool:
    return getattr(exc, "status", None) == 404


def _removable(pod: Any, on_finish_action: str) -> bool:
    """Whether a leftover pod goes: one still holding a node always; a finished one only where
    the target would have deleted it (a failed pod kept for debugging survives the retry)."""
    phase = _phase(pod)
    if phase not in TERMINAL or on_finish_action == "delete_pod":
        return True
    return phase == SUCCEEDED and on_finish_action == "delete_succeeded_pod"


def remove_leftovers(
    core_v1: Any, namespace: str, identity: TaskIdentity, on_finish_action: str = "delete_pod"
) -> list[str]:
    """Delete the pods an earlier, dead attempt of this task left (``cancel`` module)."""
    pods = core_v1.list_namespaced_pod(namespace, label_selector=identity.selector()).items
    removed = []
    for pod in pods:
        if not _removable(pod, on_finish_action):
            continue
        try:
            core_v1.delete_namespaced_pod(pod.metadata.name, namespace)
        except Exception as exc:
            if not _is_gone(exc):
                raise
        removed.append(pod.metadata.name)
    return removed


def _remove_leftovers(
    launch: Launch, core_v1: Any, namespace: str, settings: KubernetesSettings
) -> None:
    op = launch.op
    identity = TaskIdentity.of(op, launch.context)
    if identity is None:
        return
    try:
        removed = remove_leftovers(core_v1, namespace, identity, settings.on_finish_action)
    except Exception as exc:  # noqa: BLE001 - best effort: the pods' own failure says more
        op.log.warning("mlpipe: step %r: could not look for leftover pods: %s", op.step_name, exc)
        return
    if removed:
        op.log.warning(
            "mlpipe: step %r: deleted %d pod(s) an earlier attempt of this task left: %s",
            op.step_name,
            len(removed),
            ", ".join(removed),
        )


# --------------------------------------------------------------------------- one pod


class _Stopped(Exception):
    """This pod was deleted by the step itself (fail fast, kill): not a failure of its own."""


class _PodFailed(Exception):
    """The pod could not start, or ended in phase Failed."""


@dataclass
class _Node:
    pod: Any
    created: bool = False
    deleted: bool = False
    phase: str | None = None
    error: BaseException | None = None
    output: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_TAIL_LINES)
    )

    @property
    def name(self) -> str:
        return self.pod.metadata.name

    @property
    def failed(self) -> bool:
        return self.phase != SUCCEEDED


def _split_timestamp(line: str) -> tuple[tuple[str, int] | None, str]:
    """``(sortable timestamp, text)`` of a log line read with ``timestamps=True``."""
    match = _TIMESTAMP.match(line)
    if match is None:
        return None, line
    nanos = int((match.group(2) or "0").ljust(9, "0"))
    return (match.group(1), nanos), line[match.end() :]


def _lines(response: Any) -> Iterator[str]:
    """Whole lines of a followed log response, as its chunks arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace").rstrip("\r")
    if buffer:
        yield buffer.decode("utf-8", errors="replace").rstrip("\r")


def _failure_detail(pod: Any) -> str:
    """Why a pod in phase Failed failed: its reason (DeadlineExceeded, Evicted) and the exit."""
    status = pod.status
    parts = [status.reason] if status.reason else []
    for container in status.container_statuses or []:
        ended = container.state.terminated if container.state else None
        if ended is not None:
            why = f" ({ended.reason})" if ended.reason else ""
            parts.append(f"container {container.name!r} exited with code {ended.exit_code}{why}")
    if status.message:
        parts.append(status.message)
    return "; ".join(parts) or "phase Failed"


# --------------------------------------------------------------------------- a step's pods


class _PodGroup:
    """Runs a step's pods, each followed in its own thread; deletes them all on the first
    failure or a kill, and the rest as the target's ``on_finish_action`` says."""

    def __init__(self, launch: Launch, plan: StepPods, core_v1: Any, namespace: str):
        self.launch = launch
        self.settings = plan.settings
        self.core_v1 = core_v1
        self.namespace = namespace
        self.nodes = [_Node(pod) for pod in plan.pods]
        self.failed: list[int] = []  # first failure first
        self.stopping = False
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # ---- the main thread

    def run(self) -> None:
        threads = [
            threading.Thread(target=self._run_node, args=(i,), name=f"mlpipe-pod-{i}", daemon=True)
            for i in range(len(self.nodes))
        ]
        with stoppable(self.stop_all):
            for thread in threads:
                thread.start()
            try:
                while any(t.is_alive() for t in threads):
                    for thread in threads:
                        thread.join(timeout=0.1)
                    if self.failed and not self.stopping:
                        self.stop_all()  # fail fast: the other ranks would wait forever
            except BaseException:  # the task is being stopped: take every pod down with it
                self.stop_all()
                raise
        self._finish()

    def stop_all(self) -> None:
        """Delete every pod created so far that has not ended on its own (those are left to
        ``on_finish_action``); no pod is created after this."""
        with self._lock:
            self.stopping = True
            self._stop.set()
            doomed = [
                n for n in self.nodes if n.created and not n.deleted and n.phase not in TERMINAL
            ]
            for node in doomed:
                node.deleted = True
        for node in doomed:
            self._delete(node.name)

    def _finish(self) -> None:
        """Pods that ended on their own: deleted unless the target keeps them for debugging."""
        action = self.settings.on_finish_action
        for node in self.nodes:
            if not node.created or node.deleted:
                continue
            keep = action == "keep_pod" or (action == "delete_succeeded_pod" and node.failed)
            if keep:
                self.launch.op.log.info(
                    "mlpipe: kept pod %s/%s (on_finish_action %s)",
                    self.namespace,
                    node.name,
                    action,
                )
                continue
            node.deleted = True
            self._delete(node.name)

    def _delete(self, name: str) -> None:
        try:
            self.core_v1.delete_namespaced_pod(name, self.namespace)
        except Exception as exc:  # noqa: BLE001 - best effort: it may be gone already
            if not _is_gone(exc):
                self.launch.op.log.warning("mlpipe: could not delete pod %s: %s", name, exc)

    # ---- one thread per pod

    def _run_node(self, index: int) -> None:
        node = self.nodes[index]
        try:
            with self._lock:
                if self.stopping:
                    return
                self.core_v1.create_namespaced_pod(namespace=self.namespace, body=node.pod)
                node.created = True
            self._await_start(node)
            self._follow_log(node, index)
            ended = self._await_end(node)
            with self._lock:
                node.phase = _phase(ended)
            if node.phase == FAILED:
                raise _PodFailed(_failure_detail(ended))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            if self.stopping and not isinstance(exc, _PodFailed):
                return  # deleted under it by the step itself
            node.error = exc
            self._log_events(node)
            with self._lock:
                self.failed.append(index)

    def _wait(self) -> None:
        """Sleep between two reads of a pod; a stop wakes it at once."""
        if self._stop.wait(POLL_S) or self.stopping:
            raise _Stopped

    def _read(self, node: _Node) -> Any:
        if self.stopping:
            raise _Stopped
        return self.core_v1.read_namespaced_pod(node.name, self.namespace)

    def _await_start(self, node: _Node) -> None:
        """Until the pod leaves Pending: scheduled, its image pulled, its container started."""
        from airflow.providers.cncf.kubernetes.utils.pod_manager import (
            detect_pod_terminate_early_issues,
        )

        timeout = self.settings.startup_timeout_seconds
        deadline = time.monotonic() + timeout
        while True:
            pod = self._read(node)
            if _phase(pod) not in (None, PENDING, UNKNOWN):
                return
            problem = detect_pod_terminate_early_issues(pod)
            if problem:
                raise _PodFailed(problem)
            if time.monotonic() > deadline:
                raise _PodFailed(
                    f"still Pending after startup_timeout_seconds={timeout} (not scheduled, or "
                    "its image not pulled); see the pod's events"
                )
            self._wait()

    def _follow_log(self, node: _Node, index: int) -> None:
        """Stream the container's log into the task log until the container ends.

        The API server may close a followed log of a long step; it is followed again from the
        last line read (timestamps tell lines already logged from new ones).
        """
        log = self.launch.op.log
        prefix = f"[node {index}] " if len(self.nodes) > 1 else ""
        last: tuple[str, int] | None = None
        last_read = 0.0
        while True:
            extra = {}
            if last is not None:
                extra["since_seconds"] = max(1, math.ceil(time.time() - last_read) + 2)
            try:
                response = self.core_v1.read_namespaced_pod_log(
                    node.name,
                    self.namespace,
                    container=CONTAINER_NAME,
                    follow=True,
                    timestamps=True,
                    _preload_content=False,
                    **extra,
                )
            except Exception as exc:  # noqa: BLE001 - the pod's phase still decides
                if self.stopping:
                    raise _Stopped from None
                log.warning("mlpipe: could not read the log of pod %s: %s", node.name, exc)
                return
            try:
                for line in _lines(response):
                    stamp, text = _split_timestamp(line)
                    if stamp is not None and last is not None and stamp <= last:
                        continue  # read again after reconnecting
                    if stamp is not None:
                        last, last_read = stamp, time.time()
                    node.output.append(text)
                    log.info("%s%s", prefix, text)
            finally:
                with contextlib.suppress(Exception):
                    response.release_conn()
            if _phase(self._read(node)) in TERMINAL:
                return
            self._wait()

    def _await_end(self, node: _Node) -> Any:
        while True:
            pod = self._read(node)
            if _phase(pod) in TERMINAL:
                return pod
            self._wait()

    def _log_events(self, node: _Node) -> None:
        """What the cluster said about a failed pod (scheduling, pulling, eviction), best effort."""
        if not node.created:
            return
        with contextlib.suppress(Exception):
            events = self.core_v1.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={node.name}"
            ).items
            for event in events:
                self.launch.op.log.warning(
                    "mlpipe: pod %s: event %s: %s", node.name, event.reason, event.message
                )


# --------------------------------------------------------------------------- run


def run(launch: Launch) -> ProcessResult:
    """Run the step's pods (one per node, in parallel) to completion within this task."""
    op = launch.op
    started = time.monotonic()
    plan = build_pods(launch)
    settings = plan.settings
    core_v1 = _core_v1(settings)
    namespace = _namespace(settings)
    for pod in plan.pods:
        pod.metadata.namespace = namespace
    total = len(plan.pods)
    target = op.compute.get("name", "?")

    _remove_leftovers(launch, core_v1, namespace, settings)
    op.log.info(
        "mlpipe: step %r: %d pod(s) in namespace %r on compute target %r, image %s",
        op.step_name,
        total,
        namespace,
        target,
        plan.image,
    )
    group = _PodGroup(launch, plan, core_v1, namespace)
    group.run()
    if group.failed:
        index = group.failed[0]
        node = group.nodes[index]
        where = f" (node {index} of {total})" if total > 1 else ""
        error = node.error
        detail = str(error) if isinstance(error, _PodFailed) else f"{type(error).__name__}: {error}"
        tail = "\n".join(node.output) or "(no output)"
        raise StepFailedError(
            f"step {op.step_name!r} failed: pod {node.name!r}{where} on compute target "
            f"{target!r} (backend kubernetes): {detail}; last lines of its log:\n{tail}"
        ) from error
    if any(node.failed for node in group.nodes):  # stopped (on_kill) before every pod ended
        raise StepFailedError(
            f"step {op.step_name!r} was stopped: its pods on compute target {target!r} were "
            "deleted before they finished"
        )
    return ProcessResult(0, time.monotonic() - started, [])
