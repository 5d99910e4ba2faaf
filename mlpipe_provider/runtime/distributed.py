"""Launch a step as a local process group: one process per rank, with the usual rank variables.

On the local backend every "node" is this machine, so ``node_count`` x ``process_count_per_node``
processes start here. Each gets what torch.distributed, Horovod/MPI-style code and TensorFlow
read: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT, the
OMPI_COMM_WORLD_* names, and TF_CONFIG for parameter-server jobs. With GPUs, each process sees
one device through CUDA_VISIBLE_DEVICES: its own, or, when a node runs more processes than it has
GPUs (v1 ran that), one it shares with other processes of that node, round-robin.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Collection
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.process import Command

#: the variables ``build_commands`` sets per rank (plus PYTHONUNBUFFERED, which script_step sets):
#: a container or pod always gets them, even where the worker happens to have the same value
RANK_VARIABLES = frozenset(
    {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "NODE_RANK",
        "GROUP_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "NODE_COUNT",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "OMPI_COMM_WORLD_NODE_RANK",
        "PMI_RANK",
        "PMI_SIZE",
        "TF_CONFIG",
        "PYTHONUNBUFFERED",
    }
)


def step_environment(
    env: dict[str, str], declared: Collection[str], *, never: Collection[str] = ()
) -> dict[str, str]:
    """What of a rank's environment goes into a container or pod (docker and kubernetes alike).

    ``env`` is the worker's environment plus the step's (``script_step``). Kept: the variables
    the step's Environment declares, the rank variables, and whatever mlpipe set for this run
    (every variable whose value the worker's own environment does not have). A variable the
    worker merely inherited (same name, same value) stays behind, and so does every name in
    ``never`` (worker-only names such as PATH or HOME, CUDA_VISIBLE_DEVICES where the device
    request or plugin picks the GPUs) unless the step declares it.
    """
    host = os.environ
    kept: dict[str, str] = {}
    for name, value in env.items():
        if (
            name in declared
            or name in RANK_VARIABLES
            or name not in never
            and host.get(name) != value
        ):
            kept[name] = value
    return kept


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolve_counts(
    distribution: dict[str, Any], params: dict[str, Any], step_name: str
) -> dict[str, Any]:
    """Counts with PipelineParameter placeholders replaced by this run's values (each >= 1)."""
    resolved = {"framework": distribution.get("framework", "none")}
    for key in ("node_count", "process_count_per_node", "worker_count", "parameter_server_count"):
        value = distribution.get(key)
        if isinstance(value, dict):
            value = params.get(value["param"])
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserErrorException(
                f"step {step_name!r}: {key} must be an integer >= 1 in this run, got {value!r}"
            )
        resolved[key] = value
    return resolved


def world_size(counts: dict[str, Any]) -> int:
    if counts["framework"] == "tensorflow":
        return counts.get("worker_count", 1) + counts.get("parameter_server_count", 0)
    return counts.get("node_count", 1) * counts.get("process_count_per_node", 1)


def gpu_shape(counts: dict[str, Any]) -> tuple[int, int]:
    """(nodes, processes per node) as ``build_commands`` lays them out: a TF job is one node."""
    if counts.get("framework") == "tensorflow":
        return 1, world_size(counts)
    return counts.get("node_count", 1), counts.get("process_count_per_node", 1)


def gpus_held(nodes: int, per_node: int, gpus_per_node: int) -> int:
    """GPUs a step holds: one per process, but never more than its nodes have.

    v1 ran ``process_count_per_node`` above a VM's GPU count; the extra processes share the
    node's GPUs instead of asking for GPUs no node has (a pool slot that can never be granted).
    """
    return max(nodes, 1) * min(per_node, gpus_per_node) if gpus_per_node > 0 else 0


def device_for_rank(devices: list[str], nodes: int, node_rank: int, local_rank: int) -> str:
    """The device a rank sees: its node's share of ``devices``, assigned round-robin.

    ``devices`` holds each node's devices in node order (``gpus_held`` of them), so a node's
    processes only ever share that node's GPUs, as they would on separate machines.
    """
    if not devices:
        return ""
    nodes = max(nodes, 1)
    if len(devices) % nodes:
        return devices[(node_rank + local_rank) % len(devices)]
    per_node = len(devices) // nodes
    return devices[(node_rank % nodes) * per_node + local_rank % per_node]


def build_commands(
    argv: list[str], env: dict[str, str], counts: dict[str, Any], devices: list[str] | None
) -> list[Command]:
    """One Command per process; a plain (non-distributed) step is exactly one, unchanged."""
    total = world_size(counts)
    if total == 1 and counts["framework"] == "none":
        single = dict(env)
        if devices is not None:
            single["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
        return [Command(argv, single)]
    nodes = counts.get("node_count", 1)
    per_node = counts.get("process_count_per_node", 1)
    master_port = str(_free_port())
    tf_roles: list[tuple[str, int]] = []
    tf_cluster: dict[str, list[str]] = {}
    if counts["framework"] == "tensorflow":
        workers, servers = counts.get("worker_count", 1), counts.get("parameter_server_count", 0)
        tf_cluster = {
            "worker": [f"127.0.0.1:{_free_port()}" for _ in range(workers)],
            "ps": [f"127.0.0.1:{_free_port()}" for _ in range(servers)],
        }
        tf_roles = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(servers)]
        per_node = total
        nodes = 1
    commands = []
    for rank in range(total):
        node_rank, local_rank = divmod(rank, per_node)
        rank_env = dict(env)
        rank_env.update(
            {
                "RANK": str(rank),
                "WORLD_SIZE": str(total),
                "LOCAL_RANK": str(local_rank),
                "LOCAL_WORLD_SIZE": str(per_node),
                "NODE_RANK": str(node_rank),
                "GROUP_RANK": str(node_rank),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": master_port,
                "NODE_COUNT": str(nodes),
                "OMPI_COMM_WORLD_RANK": str(rank),
                "OMPI_COMM_WORLD_SIZE": str(total),
                "OMPI_COMM_WORLD_LOCAL_RANK": str(local_rank),
                "OMPI_COMM_WORLD_LOCAL_SIZE": str(per_node),
                "OMPI_COMM_WORLD_NODE_RANK": str(node_rank),
                "PMI_RANK": str(rank),
                "PMI_SIZE": str(total),
            }
        )
        if tf_roles:
            role, index = tf_roles[rank]
            rank_env["TF_CONFIG"] = json.dumps(
                {"cluster": tf_cluster, "task": {"type": role, "index": index}}
            )
        if devices is not None:
            rank_env["CUDA_VISIBLE_DEVICES"] = device_for_rank(
                devices, nodes, node_rank, local_rank
            )
        commands.append(Command(argv, rank_env, prefix=f"[rank {rank}] "))
    return commands
