"""Running a step's pods from inside its Airflow task (in parallel for a multi-node job), and
turning any failure into a ``StepFailedError`` naming the step."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from mlpipe_provider.errors import StepFailedError
from mlpipe_provider.runtime.backends import Launch
from mlpipe_provider.runtime.backends.kubernetes.pod_spec import LAUNCHER, pod_operators
from mlpipe_provider.runtime.cancel import TaskIdentity
from mlpipe_provider.runtime.process import ProcessResult

__all__ = ["LAUNCHER", "pod_operators", "run"]


# --------------------------------------------------------------------------- running


class _TaskInstanceView:
    """The step task's TaskInstance as a pod operator sees it: its XCom pushes are dropped, so
    several pods (and their bookkeeping) never write over the step's own XComs."""

    def __init__(self, ti: Any):
        self._ti = ti

    def xcom_push(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ti, name)


def _pod_context(context: Any) -> dict[str, Any]:
    ctx = dict(context)
    ti = ctx.get("ti") or ctx.get("task_instance")
    if ti is not None:
        view = _TaskInstanceView(ti)
        ctx["ti"] = ctx["task_instance"] = view
    return ctx


def _run_pod(pod_op: Any, context: Any) -> None:
    """Create the pod, stream its logs into the task log, wait, clean up; raises on failure.

    The one place that talks to the cluster (tests replace it).
    """
    pod_op.execute_sync(_pod_context(context))


def _stop_pod(pod_op: Any) -> None:
    try:
        pod_op.on_kill()
    except Exception as exc:  # best effort: the pod may be gone already
        pod_op.log.warning("mlpipe: could not delete pod of %s: %s", pod_op.task_id, exc)


def _core_v1(pod_op: Any) -> Any:
    """The cluster's ``CoreV1Api``, from the provider's ``KubernetesHook`` (tests replace it)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(
        conn_id=pod_op.kubernetes_conn_id,
        in_cluster=pod_op.in_cluster,
        config_file=pod_op.config_file,
        cluster_context=pod_op.cluster_context,
    ).core_v1_client


def remove_leftovers(core_v1: Any, namespace: str, identity: TaskIdentity) -> list[str]:
    """Delete the pods an earlier, dead attempt of this task left (``cancel`` module)."""
    pods = core_v1.list_namespaced_pod(namespace, label_selector=identity.selector()).items
    for pod in pods:
        core_v1.delete_namespaced_pod(pod.metadata.name, namespace)
    return [pod.metadata.name for pod in pods]


def _remove_leftovers(launch: Launch, pod_op: Any) -> None:
    op = launch.op
    identity = TaskIdentity.of(op, launch.context)
    if identity is None:
        return
    try:
        removed = remove_leftovers(_core_v1(pod_op), pod_op.namespace, identity)
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


def run(launch: Launch) -> ProcessResult:
    """Run the step's pods (one per node, in parallel) to completion within this task."""
    op = launch.op
    started = time.monotonic()
    operators = pod_operators(launch)
    total = len(operators)
    target = op.compute.get("name", "?")

    def failure(index: int, exc: BaseException) -> StepFailedError:
        node = f" (node {index} of {total})" if total > 1 else ""
        return StepFailedError(
            f"step {op.step_name!r} failed: pod {operators[index].name!r}{node} on compute target "
            f"{target!r} (backend kubernetes): {type(exc).__name__}: {exc}"
        )

    _remove_leftovers(launch, operators[0])
    op.log.info(
        "mlpipe: step %r: %d pod(s) on compute target %r, image %s",
        op.step_name,
        total,
        target,
        operators[0].image,
    )
    if total == 1:
        try:
            _run_pod(operators[0], launch.context)
        except Exception as exc:
            raise failure(0, exc) from exc
        return ProcessResult(0, time.monotonic() - started, [])

    pool = ThreadPoolExecutor(max_workers=total, thread_name_prefix="mlpipe-pod")
    futures = {
        pool.submit(_run_pod, pod_op, launch.context): i for i, pod_op in enumerate(operators)
    }
    try:
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
    except BaseException:  # the task is being stopped: take every pod down with it
        for pod_op in operators:
            _stop_pod(pod_op)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    failed = [(futures[f], f.exception()) for f in done if f.exception() is not None]
    if failed:
        for future in pending:  # a lone rank would wait in its collective until the deadline
            _stop_pod(operators[futures[future]])
        wait(pending, timeout=60)
        pool.shutdown(wait=False, cancel_futures=True)
        index, exc = min(failed, key=lambda item: item[0])
        raise failure(index, exc) from exc
    pool.shutdown(wait=True)
    return ProcessResult(0, time.monotonic() - started, [])
