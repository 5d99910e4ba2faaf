"""An in-memory Kubernetes API at the ``CoreV1Api`` boundary, for the kubernetes backend's tests.

There is no cluster here, so the one object the backend gets from ``KubernetesHook`` is replaced
by this: pods are created, read, followed, listed and deleted as the API server would do it
(404 for a pod that is gone, 400 for the log of a container that has not started), and each
created pod's container is "run" by a kubelet function in a thread of its own. The kubelet
writes the container's log lines and returns its exit code; it can block until the pod is
deleted (``FakePod.deleted``), as a rank waiting in a collective does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kubernetes.client import models as k8s
from kubernetes.client.rest import ApiException

Kubelet = Callable[[k8s.V1Pod, "FakePod"], int]


def _stamp(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


class FakePod:
    """One pod on the fake cluster: its spec, its phase, its log."""

    def __init__(self, body: k8s.V1Pod):
        self.body = body
        self.phase = "Pending"
        self.exit_code: int | None = None
        self.waiting: tuple[str, str] | None = None  # (reason, message) while Pending
        self.lines: list[tuple[int, str]] = []  # (time in ns, text)
        self.deleted = threading.Event()
        self.changed = threading.Condition()

    @property
    def name(self) -> str:
        return self.body.metadata.name

    def write(self, text: str) -> None:
        """A line the container printed."""
        with self.changed:
            now = max(time.time_ns(), self.lines[-1][0] + 1 if self.lines else 0)
            self.lines.append((now, text))
            self.changed.notify_all()

    def set_phase(self, phase: str) -> None:
        with self.changed:
            self.phase = phase
            self.changed.notify_all()

    def status(self) -> k8s.V1PodStatus:
        (container,) = self.body.spec.containers
        if self.exit_code is not None:
            state = k8s.V1ContainerState(
                terminated=k8s.V1ContainerStateTerminated(
                    exit_code=self.exit_code, reason="Completed" if not self.exit_code else "Error"
                )
            )
        elif self.phase == "Running":
            state = k8s.V1ContainerState(running=k8s.V1ContainerStateRunning())
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            state = k8s.V1ContainerState(
                waiting=k8s.V1ContainerStateWaiting(reason=reason, message=message)
            )
        return k8s.V1PodStatus(
            phase=self.phase,
            container_statuses=[
                k8s.V1ContainerStatus(
                    name=container.name,
                    image=container.image,
                    image_id="",
                    ready=self.phase == "Running",
                    restart_count=0,
                    state=state,
                )
            ],
        )


class FakeLogResponse:
    """A followed log, as ``read_namespaced_pod_log(..., _preload_content=False)`` returns it:
    ``stream()`` yields byte chunks as the container writes (a line may span two chunks)."""

    def __init__(self, pod: FakePod, *, follow: bool, timestamps: bool, since_ns: int, cut: int):
        self.pod = pod
        self.follow = follow
        self.timestamps = timestamps
        self.since_ns = since_ns
        self.cut = cut  # the API server closes the stream after this many lines (0: never)
        self.released = False

    def _chunks(self, ns: int, text: str) -> list[bytes]:
        data = (f"{_stamp(ns)} {text}\n" if self.timestamps else f"{text}\n").encode()
        return [data[:5], data[5:]]

    def stream(self, amt: int | None = None, decode_content: bool | None = None):
        sent = 0
        index = 0
        while True:
            with self.pod.changed:
                while (
                    self.follow
                    and index >= len(self.pod.lines)
                    and self.pod.phase not in ("Succeeded", "Failed")
                    and not self.pod.deleted.is_set()
                ):
                    self.pod.changed.wait(0.05)
                new = self.pod.lines[index:]
                index = len(self.pod.lines)
                ended = (
                    not self.follow
                    or self.pod.phase in ("Succeeded", "Failed")
                    or self.pod.deleted.is_set()
                )
            for ns, text in new:
                if ns < self.since_ns:
                    continue
                yield from self._chunks(ns, text)
                sent += 1
                if self.cut and sent >= self.cut:
                    return
            if ended and index >= len(self.pod.lines):
                return

    def release_conn(self) -> None:
        self.released = True


class FakeCoreV1:
    """The cluster as ``CoreV1Api`` shows it. ``kubelet`` runs each created pod's container;
    pods whose image is in ``missing_images`` never start (``ErrImagePull``); ``log_cut`` makes
    the first followed log of each pod end after that many lines, as an API server that closes
    long streams does."""

    def __init__(
        self,
        kubelet: Kubelet | None = None,
        *,
        missing_images: frozenset[str] = frozenset(),
        log_cut: int = 0,
    ):
        self.kubelet = kubelet or (lambda pod, fake: 0)
        self.missing_images = missing_images
        self.log_cut = log_cut
        self.pods: dict[str, FakePod] = {}
        self.created: list[k8s.V1Pod] = []
        self.deleted: list[str] = []
        self.log_reads: list[dict] = []
        self.selectors: list[str] = []
        self._lock = threading.Lock()

    def seed(self, name: str, labels: dict[str, str], phase: str = "Running") -> None:
        """A pod someone else created (an earlier attempt, another task): no kubelet runs it."""
        body = k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, namespace="default", labels=labels),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base", image="img")]),
        )
        self.pods[name] = FakePod(body)
        self.pods[name].phase = phase

    def _get(self, name: str) -> FakePod:
        pod = self.pods.get(name)
        if pod is None:
            raise ApiException(status=404, reason=f"pods {name!r} not found")
        return pod

    # ---- the CoreV1Api methods the backend calls

    def create_namespaced_pod(self, namespace: str, body: k8s.V1Pod, **kwargs) -> k8s.V1Pod:
        assert body.metadata.namespace == namespace, (body.metadata.namespace, namespace)
        with self._lock:
            if body.metadata.name in self.pods:
                raise ApiException(status=409, reason="AlreadyExists")
            pod = self.pods[body.metadata.name] = FakePod(body)
            self.created.append(body)
        threading.Thread(target=self._run, args=(pod,), daemon=True).start()
        return body

    def _run(self, pod: FakePod) -> None:
        (container,) = pod.body.spec.containers
        if container.image in self.missing_images:
            pod.waiting = ("ErrImagePull", f"rpc error: manifest for {container.image} not found")
            return
        pod.set_phase("Running")
        code = self.kubelet(pod.body, pod)
        pod.exit_code = code
        pod.set_phase("Succeeded" if code == 0 else "Failed")

    def read_namespaced_pod(self, name: str, namespace: str, **kwargs) -> k8s.V1Pod:
        pod = self._get(name)
        return k8s.V1Pod(metadata=pod.body.metadata, spec=pod.body.spec, status=pod.status())

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs) -> FakeLogResponse:
        pod = self._get(name)
        self.log_reads.append({"name": name, **kwargs})
        if pod.phase == "Pending":
            raise ApiException(status=400, reason="container base is waiting to start")
        assert kwargs.get("_preload_content") is False and kwargs.get("container") == "base"
        first = sum(1 for read in self.log_reads if read["name"] == name) == 1
        since = kwargs.get("since_seconds")
        return FakeLogResponse(
            pod,
            follow=bool(kwargs.get("follow")),
            timestamps=bool(kwargs.get("timestamps")),
            since_ns=time.time_ns() - since * 1_000_000_000 if since else 0,
            cut=self.log_cut if first else 0,
        )

    def delete_namespaced_pod(self, name: str, namespace: str, **kwargs) -> None:
        with self._lock:
            pod = self._get(name)
            del self.pods[name]
            self.deleted.append(name)
        with pod.changed:
            pod.deleted.set()
            pod.changed.notify_all()

    def list_namespaced_pod(self, namespace: str, label_selector: str = "", **kwargs):
        self.selectors.append(label_selector)
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(",") if pair)
        items = [
            k8s.V1Pod(metadata=pod.body.metadata, status=k8s.V1PodStatus(phase=pod.phase))
            for pod in list(self.pods.values())
            if all((pod.body.metadata.labels or {}).get(k) == v for k, v in wanted.items())
        ]
        return k8s.V1PodList(items=items)

    def list_namespaced_event(self, namespace: str, field_selector: str = "", **kwargs):
        name = field_selector.removeprefix("involvedObject.name=")
        pod = self.pods.get(name)
        items = []
        if pod is not None and pod.waiting:
            items.append(
                k8s.CoreV1Event(
                    metadata=k8s.V1ObjectMeta(name=f"{name}.1"),
                    involved_object=k8s.V1ObjectReference(name=name),
                    reason="Failed",
                    message=pod.waiting[1],
                )
            )
        return k8s.CoreV1EventList(items=items)
