"""Compute targets: named capacity (CPUs, memory, GPUs) and the backend that runs a step there.

``ws.compute_targets["STANDARD_NC6"]`` works even when nothing is registered under that name,
because many v1 programs name targets after their VM size; the size table gives the GPU count,
which becomes the Airflow pool's slots.
"""

from __future__ import annotations

import re
from typing import Any

from mlpipe_provider.compute_sizes import VmSize, lookup_vm_size
from mlpipe_provider.config import ComputeTargetConfig
from mlpipe_provider.errors import ComputeTargetException

LOCAL_TARGET = "local"
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,31}$")


class ComputeTargetProvisioningConfiguration:
    """What ``provisioning_configuration`` returns: the settings of a target to create."""

    def __init__(self, **settings: Any):
        self.settings = settings

    def validate_configuration(self) -> None:
        vm_size = self.settings.get("vm_size")
        if vm_size and lookup_vm_size(vm_size) is None:
            raise ComputeTargetException(f"unknown vm_size {vm_size!r}")


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    pass


class ComputeTarget:
    """A compute target. ``ComputeTarget(workspace=ws, name=...)`` fetches a registered one."""

    _compute_type = "AmlCompute"

    def __new__(cls, workspace: Any = None, name: str | None = None, *args: Any, **kwargs: Any):
        return super().__new__(AmlCompute if cls is ComputeTarget else cls)

    def __init__(self, workspace: Any, name: str, *, _config: ComputeTargetConfig | None = None):
        if _config is None:
            _config = _resolve_target(workspace, name)
        self.workspace = workspace
        self.name = name
        self._target = _config

    # --- v1 class methods -------------------------------------------------------------------
    @staticmethod
    def create(
        workspace: Any,
        name: str,
        provisioning_configuration: ComputeTargetProvisioningConfiguration,
    ) -> ComputeTarget:
        """Register a target in the workspace config; returns at once (nothing to provision)."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ComputeTargetException(
                f"compute target name {name!r} must be 2-32 letters, digits, '-' or '_', "
                "starting with a letter"
            )
        settings = dict(provisioning_configuration.settings)
        vm_size = settings.get("vm_size") or "STANDARD_D2_V2"
        if lookup_vm_size(vm_size) is None:
            raise ComputeTargetException(f"compute target {name!r}: unknown vm_size {vm_size!r}")
        min_nodes = settings.get("min_nodes") or 0
        max_nodes = settings.get("max_nodes")
        max_nodes = 4 if max_nodes is None else max_nodes  # v1's default
        if (
            not isinstance(max_nodes, int)
            or not isinstance(min_nodes, int)
            or not 0 <= min_nodes <= max_nodes
            or max_nodes < 1
        ):
            raise ComputeTargetException(
                f"compute target {name!r}: need 0 <= min_nodes <= max_nodes and max_nodes >= 1, "
                f"got min_nodes={min_nodes!r}, max_nodes={max_nodes!r}"
            )
        config = workspace._config
        target = ComputeTargetConfig(
            vm_size=vm_size.upper(),
            backend=settings.get("backend") or "local",
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            vm_priority=settings.get("vm_priority") or "dedicated",
            compute_type=settings.get("compute_type") or "AmlCompute",
            description=settings.get("description"),
            **_backend_settings(settings),
        )
        config.compute_targets[name] = target
        workspace._save(config)
        return AmlCompute(workspace, name, _config=target)

    @staticmethod
    def list(workspace: Any) -> list[ComputeTarget]:
        return [
            AmlCompute(workspace, n, _config=c)
            for n, c in sorted(workspace._config.compute_targets.items())
        ]

    @staticmethod
    def attach(workspace: Any, name: str, attach_configuration: Any) -> ComputeTarget:
        return ComputeTarget.create(workspace, name, attach_configuration)

    # --- v1 instance methods ----------------------------------------------------------------
    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: int = 25,
        is_delete_operation: bool = False,
    ) -> None:
        if show_output:
            print(f"Compute target {self.name!r} is ready ({self.vm_size}, backend {self.backend})")

    def get_status(self) -> AmlComputeStatus:
        """v1's ``AmlComputeStatus``: always provisioned and steady here; the node counts are the
        target's ``min_nodes`` (idle), since Airflow workers, not a cluster, run the steps."""
        return AmlComputeStatus.for_target(self)

    @property
    def status(self) -> AmlComputeStatus:
        return self.get_status()

    def refresh_state(self) -> None:
        """Re-read the target from the workspace config (v1 re-read it from Azure)."""
        self._target = _resolve_target(self.workspace, self.name)

    def update(
        self,
        min_nodes: int | None = None,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
    ) -> None:
        """Change the node counts kept for a registered target (v1's ``AmlCompute.update``)."""
        config = self.workspace._config
        if self.name not in config.compute_targets:
            raise ComputeTargetException(
                f"compute target {self.name!r} is not registered in the workspace; "
                "create it with ComputeTarget.create(...) before updating it"
            )
        target = config.compute_targets[self.name]
        low = target.min_nodes if min_nodes is None else min_nodes
        high = target.max_nodes if max_nodes is None else max_nodes
        if not 0 <= low <= high or high < 1:
            raise ComputeTargetException(
                f"compute target {self.name!r}: need 0 <= min_nodes <= max_nodes and "
                f"max_nodes >= 1, got min_nodes={low!r}, max_nodes={high!r}"
            )
        config.compute_targets[self.name] = target.model_copy(
            update={"min_nodes": low, "max_nodes": high}
        )
        self.workspace._save(config)
        self._target = config.compute_targets[self.name]

    def list_nodes(self) -> list[dict[str, Any]]:
        """No nodes are provisioned for a target here; Airflow's workers run its steps."""
        return []

    @property
    def provisioning_state(self) -> str:
        return "Succeeded"

    @property
    def type(self) -> str:
        return self._compute_type

    def delete(self) -> None:
        config = self.workspace._config
        config.compute_targets.pop(self.name, None)
        self.workspace._save(config)

    detach = delete

    # --- capacity ------------------------------------------------------------------------
    @property
    def vm_size(self) -> str:
        return self._target.vm_size

    @property
    def backend_settings(self) -> dict[str, Any]:
        """The backend's own settings from the target's config (image, network, ...), not v1 API."""
        return dict(self._target.model_extra or {})

    @property
    def backend(self) -> str:
        return self._target.backend

    @property
    def _size(self) -> VmSize:
        return lookup_vm_size(self.vm_size) or VmSize(1, 2, 0)

    @property
    def gpu_count(self) -> int:
        return self._size.gpus

    @property
    def cpu_count(self) -> int:
        return self._size.cpus

    @property
    def memory_gb(self) -> float:
        return self._size.memory_gb

    @property
    def scale_settings(self) -> dict[str, Any]:
        return {
            "minimum_node_count": self._target.min_nodes,
            "maximum_node_count": self._target.max_nodes,
        }

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, **self._target.model_dump(mode="json")}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vm_size={self.vm_size!r}, gpus={self.gpu_count})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ComputeTarget) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class AmlCompute(ComputeTarget):
    """v1's managed cluster; here a named target with a VM size and a backend."""

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int | None = None,
        admin_username: str | None = None,
        admin_user_password: str | None = None,
        admin_user_ssh_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict | None = None,
        description: str | None = None,
        remote_login_port_public_access: str = "NotSpecified",
        identity_type: str | None = None,
        identity_id: list | None = None,
        location: str | None = None,
        enable_node_public_ip: bool = True,
        backend: str | None = None,
        image: str | None = None,
        network: str | None = None,
        **backend_settings: Any,
    ) -> AmlComputeProvisioningConfiguration:
        """v1's parameters, plus mlpipe's ``backend`` and its settings (``image``, ``network``,
        ``docker_url``, ``shm_size``, ``pull``, ... see docs/backends.md), kept in the target's
        config."""
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size,
            vm_priority=vm_priority,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            description=description,
            backend=backend,
            backend_settings={"image": image, "network": network, **backend_settings},
        )

    @staticmethod
    def supported_vmsizes(workspace: Any, location: str | None = None) -> list[dict[str, Any]]:
        from mlpipe_provider.compute_sizes import VM_SIZES

        return [
            {"name": name, "vCPUs": s.cpus, "gpus": s.gpus, "memoryGB": s.memory_gb}
            for name, s in sorted(VM_SIZES.items())
        ]


def _backend_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A provisioning configuration's backend settings (image, network, ...): the config's extras."""
    extras = settings.get("backend_settings") or {}
    fields = set(ComputeTargetConfig.model_fields)
    clash = sorted(k for k in extras if k in fields)
    if clash:
        raise ComputeTargetException(f"backend settings {clash} clash with compute target fields")
    return {str(k): v for k, v in sorted(extras.items()) if v is not None}


def _resolve_target(workspace: Any, name: Any) -> ComputeTargetConfig:
    if not isinstance(name, str):
        raise ComputeTargetException(
            f"compute target name must be a string, got {type(name).__name__}"
        )
    registered = workspace._config.compute_targets
    if name in registered:
        return registered[name]
    if name == LOCAL_TARGET:
        return ComputeTargetConfig(vm_size="STANDARD_D2_V2", backend="local", compute_type="Local")
    if lookup_vm_size(name) is not None:
        return ComputeTargetConfig(vm_size=name.upper(), backend="local")
    known = ", ".join(sorted(registered)) or "none registered"
    raise ComputeTargetException(
        f"ComputeTargetNotFound: compute target {name!r} does not exist in workspace "
        f"{workspace.name!r} ({known}); create it with ComputeTarget.create(...) or use a VM size "
        "name such as 'STANDARD_D2_V2'"
    )


class ComputeTargets(dict):
    """``ws.compute_targets``: registered targets, plus any known VM size on demand."""

    def __init__(self, workspace: Any):
        super().__init__(
            (name, AmlCompute(workspace, name, _config=cfg))
            for name, cfg in sorted(workspace._config.compute_targets.items())
        )
        self._workspace = workspace

    def __missing__(self, name: str) -> ComputeTarget:
        try:
            return AmlCompute(self._workspace, name)
        except ComputeTargetException as exc:
            raise KeyError(name) from exc


class AmlComputeNodeStateCounts:
    """v1's node state counts of a cluster."""

    def __init__(
        self,
        idle_node_count: int = 0,
        leaving_node_count: int = 0,
        preempted_node_count: int = 0,
        preparing_node_count: int = 0,
        running_node_count: int = 0,
        unusable_node_count: int = 0,
    ):
        self.idle_node_count = idle_node_count
        self.leaving_node_count = leaving_node_count
        self.preempted_node_count = preempted_node_count
        self.preparing_node_count = preparing_node_count
        self.running_node_count = running_node_count
        self.unusable_node_count = unusable_node_count

    def serialize(self) -> dict[str, int]:
        return {
            "idleNodeCount": self.idle_node_count,
            "leavingNodeCount": self.leaving_node_count,
            "preemptedNodeCount": self.preempted_node_count,
            "preparingNodeCount": self.preparing_node_count,
            "runningNodeCount": self.running_node_count,
            "unusableNodeCount": self.unusable_node_count,
        }

    def __repr__(self) -> str:
        return f"AmlComputeNodeStateCounts({self.serialize()})"


class AmlComputeStatus:
    """v1's ``AmlComputeStatus`` (what ``get_status()`` returns), with its fields and ``serialize``."""

    def __init__(
        self,
        allocation_state: str,
        allocation_state_transition_time: str | None,
        creation_time: str | None,
        current_node_count: int,
        errors: list | None,
        modified_time: str | None,
        node_state_counts: AmlComputeNodeStateCounts,
        provisioning_state: str,
        provisioning_state_transition_time: str | None,
        scale_settings: dict[str, Any],
        target_node_count: int,
        vm_priority: str,
        vm_size: str,
    ):
        self.allocation_state = allocation_state
        self.allocation_state_transition_time = allocation_state_transition_time
        self.creation_time = creation_time
        self.current_node_count = current_node_count
        self.errors = errors
        self.modified_time = modified_time
        self.node_state_counts = node_state_counts
        self.provisioning_state = provisioning_state
        self.provisioning_state_transition_time = provisioning_state_transition_time
        self.scale_settings = scale_settings
        self.target_node_count = target_node_count
        self.vm_priority = vm_priority
        self.vm_size = vm_size

    @classmethod
    def for_target(cls, target: ComputeTarget) -> AmlComputeStatus:
        config = target._target
        nodes = int(config.min_nodes or 0)
        return cls(
            allocation_state="Steady",
            allocation_state_transition_time=None,
            creation_time=None,
            current_node_count=nodes,
            errors=None,
            modified_time=None,
            node_state_counts=AmlComputeNodeStateCounts(idle_node_count=nodes),
            provisioning_state="Succeeded",
            provisioning_state_transition_time=None,
            scale_settings={
                "minNodeCount": nodes,
                "maxNodeCount": int(config.max_nodes or 1),
                "nodeIdleTimeBeforeScaleDown": None,
            },
            target_node_count=nodes,
            vm_priority=str(config.vm_priority or "dedicated").capitalize(),
            vm_size=config.vm_size,
        )

    def serialize(self) -> dict[str, Any]:
        return {
            "currentNodeCount": self.current_node_count,
            "targetNodeCount": self.target_node_count,
            "nodeStateCounts": self.node_state_counts.serialize(),
            "allocationState": self.allocation_state,
            "allocationStateTransitionTime": self.allocation_state_transition_time,
            "errors": self.errors,
            "creationTime": self.creation_time,
            "modifiedTime": self.modified_time,
            "provisioningState": self.provisioning_state,
            "provisioningStateTransitionTime": self.provisioning_state_transition_time,
            "scaleSettings": dict(self.scale_settings),
            "vmPriority": self.vm_priority,
            "vmSize": self.vm_size,
        }

    def __repr__(self) -> str:
        return f"AmlComputeStatus({self.serialize()})"
