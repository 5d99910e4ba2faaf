"""The ``kubernetes`` backend: a step's processes run in pods, on the provider's hook and client.

Split like the provider (operator -> hook -> client; no operator of the provider runs inside
ours): ``settings`` (the target's config), ``pod_spec`` (what each pod is), ``launch`` (running
the pods), ``launcher.py`` (the program a pod with several ranks runs).

``build_pods(launch)`` (``step_pods`` for the pods alone) turns a ``Launch`` into one
``kubernetes.client.V1Pod`` per node, without touching a cluster, so every pod spec can be
checked anywhere (``ApiClient().sanitize_for_serialization(pod)`` gives its JSON). ``run(launch)``
runs them from inside the step's Airflow task through ``KubernetesHook(...).core_v1_client``:
it deletes what a dead earlier attempt of the task left (found by the task's labels), creates
the pods (in parallel for a multi-node job), streams each container's log into the task log,
waits for phase Succeeded or Failed, and deletes them; the first failure deletes the others and
becomes a ``StepFailedError`` naming the step, the pod and the node. Killing the task deletes
them too (``cancel.stoppable``).

What a pod gets (docs/backends.md, "Kubernetes", has the deployment side):

* **settings**: the kubernetes keys of the target's config, as compiled into the operator's
  ``compute`` (like the docker backend's); ``compile_problem`` checks them when compiling.
* **image**: ``images.effective_image``: the step Environment's docker image when it declares
  one (other than Azure ML's stock images), else the target's ``image``. The command is the
  step's argument list with ``argv[0]`` (the worker's interpreter) replaced by the image's
  Python (the target's ``python``, default ``python3``). Never a shell.
* **environment**: only what mlpipe set for this step (``MLPIPE_*``, ``AZUREML_*``,
  ``AML_PARAMETER_*``, rank variables, ``PYTHONUNBUFFERED``) and the variables the step's
  Environment declares; nothing the worker merely inherited (``PATH``, ``HOME``, credentials).
* **resources**: a step owns whole nodes of its VM size, as on Azure ML. Requests are
  ``request_fraction`` (default 0.9) of the size's CPUs and memory, leaving headroom for what
  the kubelet and system daemons reserve (a pod asking for 100% of a node never schedules);
  the memory limit equals the request, the CPU limit is the size's CPU count, and
  ``nvidia.com/gpu`` is limited to the size's GPUs.
* **placement**: ``node_selector``, ``tolerations``, ``namespace``, ``service_account_name``
  from the target's config.
* **data**: every local datastore the step touches is a PersistentVolumeClaim
  (``datastore_pvc``) mounted at the datastore's root path on the worker, so the paths in the
  arguments and variables are valid in the pod unchanged; each input is mounted again, read-only,
  at its own path (a ``subPath`` mount), and a datastore the step only reads is mounted
  read-only as a whole. The step's source folder comes from ``source_pvc`` (read-only) or must
  already be in the image at the same path.
* **several processes per node** (``process_count_per_node`` > 1): one container runs a tiny
  launcher (``launcher.py``, shipped as its source), a constant Python program passed with
  ``python3 -c`` whose only argument is a JSON list of the ranks' argument lists and
  variables. It starts every rank, prefixes their output
  with ``[rank N]``, and stops all of them as soon as one fails (a collective would otherwise
  hang), exiting with that rank's code. One container per rank was the alternative; it cannot
  fail fast, and it would have to split GPUs, CPUs and memory between containers.
* **several nodes**: one pod per node. Each gets a stable ``hostname`` under ``subdomain`` =
  ``headless_service`` (default ``mlpipe-nodes``), and every rank's ``MASTER_ADDR`` names the
  first pod (``<hostname>.<service>``), which resolves only if that headless Service exists and
  selects the pods (they carry the label ``mlpipe/service: <service>``).
* **labels**: the task instance's (``cancel.TaskIdentity``: DAG, Airflow run, task, map index),
  by which the next attempt finds what a SIGKILLed worker left, plus ``mlpipe/step-run`` and
  ``mlpipe/node-rank``; the annotation ``mlpipe/step`` names the step.
* **afterwards**: ``on_finish_action`` (``delete_pod``, ``delete_succeeded_pod``, ``keep_pod``)
  says which pods that ended on their own stay for debugging; pods the step stopped are always
  deleted.
"""

from __future__ import annotations

from mlpipe_provider.runtime.backends.kubernetes.launch import remove_leftovers, run
from mlpipe_provider.runtime.backends.kubernetes.pod_spec import (
    LAUNCHER,
    StepPods,
    build_pods,
    step_pods,
)
from mlpipe_provider.runtime.backends.kubernetes.settings import (
    KubernetesSettings,
    compile_problem,
    target_settings,
)

__all__ = [
    "LAUNCHER",
    "KubernetesSettings",
    "StepPods",
    "build_pods",
    "compile_problem",
    "remove_leftovers",
    "run",
    "step_pods",
    "target_settings",
]
