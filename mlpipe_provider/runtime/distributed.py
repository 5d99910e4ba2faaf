"""Launch a step as a local process group: one process per rank, with the usual rank variables.

On the local backend every "node" is this machine, so ``node_count`` x ``process_count_per_node``
processes start here. Each gets what torch.distributed, Horovod/MPI-style code and TensorFlow
read: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR, MASTER_PORT, the
OMPI_COMM_WORLD_* names, and TF_CONFIG for parameter-server jobs. With GPUs, each process sees
its own device through CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import json
import socket
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.process import Command


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
            rank_env["CUDA_VISIBLE_DEVICES"] = devices[rank % len(devices)] if devices else ""
        commands.append(Command(argv, rank_env, prefix=f"[rank {rank}] "))
    return commands
