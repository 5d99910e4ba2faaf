"""Software environments (v1's ``Environment``, ``CondaDependencies``, ``RunConfiguration``).

They are descriptions: the compiler turns them into a plain dict (``to_spec``) that is written
into the DAG file and hashed into each step's fingerprint, so changing a package re-runs the step.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import NotSupportedError, UserErrorException

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
_PIP_COMMENT_RE = re.compile(r"(^|\s)#.*$")


class CondaDependencies:
    """Conda and pip package lists, as v1 kept them."""

    def __init__(
        self,
        conda_dependencies_file_path: str | None = None,
        _underlying_structure: dict | None = None,
    ):
        self._conda_packages: list[str] = []
        self._pip_packages: list[str] = []
        self._channels: list[str] = ["conda-forge"]
        self._pip_options: list[str] = []
        self._python_version: str | None = None
        if conda_dependencies_file_path:
            self._load_file(Path(conda_dependencies_file_path))

    def _load_file(self, path: Path) -> None:
        """Read the common subset of a conda YAML (dependencies and a nested pip list)."""
        section = None
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            stripped = line.strip()
            if not line.startswith(" ") and stripped.endswith(":"):
                section = stripped[:-1]
                continue
            if stripped.startswith("- ") and section == "dependencies":
                item = stripped[2:].strip()
                if item == "pip:":
                    section = "pip"
                    continue
                self._conda_packages.append(item)
            elif stripped.startswith("- ") and section == "pip":
                self._pip_packages.append(stripped[2:].strip())
            elif stripped.startswith("- ") and section == "channels":
                self._channels.append(stripped[2:].strip())

    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        deps = CondaDependencies()
        for package in pip_packages or []:
            deps.add_pip_package(package)
        for package in conda_packages or []:
            deps.add_conda_package(package)
        if pip_indexurl:
            deps.set_pip_option(f"--index-url {pip_indexurl}")
        deps._python_version = python_version
        return deps

    def add_pip_package(self, pip_package: str) -> None:
        if pip_package not in self._pip_packages:
            self._pip_packages.append(pip_package)

    def add_conda_package(self, conda_package: str) -> None:
        if conda_package not in self._conda_packages:
            self._conda_packages.append(conda_package)

    def add_channel(self, channel: str) -> None:
        if channel not in self._channels:
            self._channels.append(channel)

    def set_pip_option(self, pip_option: str) -> None:
        self._pip_options.append(pip_option)

    def remove_pip_package(self, pip_package: str) -> None:
        self._pip_packages = [p for p in self._pip_packages if p != pip_package]

    def remove_conda_package(self, conda_package: str) -> None:
        self._conda_packages = [p for p in self._conda_packages if p != conda_package]

    def set_python_version(self, version: str) -> None:
        self._python_version = version

    def get_python_version(self) -> str | None:
        return self._python_version

    @property
    def pip_packages(self) -> list[str]:
        return list(self._pip_packages)

    @property
    def conda_packages(self) -> list[str]:
        return list(self._conda_packages)

    def serialize_to_string(self) -> str:
        lines = ["name: project_environment", "dependencies:"]
        if self._python_version:
            lines.append(f"  - python={self._python_version}")
        lines += [f"  - {p}" for p in self._conda_packages]
        if self._pip_packages:
            lines.append("  - pip:")
            lines += [f"    - {p}" for p in self._pip_packages]
        lines.append("channels:")
        lines += [f"  - {c}" for c in self._channels]
        return "\n".join(lines) + "\n"

    def save(self, path: str) -> None:
        Path(path).write_text(self.serialize_to_string(), encoding="utf-8")

    def to_spec(self) -> dict[str, Any]:
        return {
            "conda_packages": list(self._conda_packages),
            "pip_packages": list(self._pip_packages),
            "pip_options": list(self._pip_options),
            "python_version": self._python_version,
        }


class PythonSection:
    def __init__(self) -> None:
        self.conda_dependencies = CondaDependencies()
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies_file: str | None = None


class DockerSection:
    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = DEFAULT_CPU_IMAGE
        self.base_dockerfile: str | None = None
        self.shm_size: str | None = None
        self.arguments: list[str] = []


class Environment:
    """A named software environment."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise UserErrorException("Environment name must be a non-empty string")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}

    @staticmethod
    def from_pip_requirements(
        name: str, file_path: str, pip_version: str | None = None
    ) -> Environment:
        env = Environment(name)
        for raw in Path(file_path).read_text(encoding="utf-8").splitlines():
            # pip's rule: '#' starts a comment only at the line start or after whitespace, so
            # URL fragments such as '#sha256=' or '#egg=' stay part of the requirement
            line = _PIP_COMMENT_RE.sub("", raw).strip()
            if line:
                env.python.conda_dependencies.add_pip_package(line)
        if pip_version:
            env.python.conda_dependencies.add_conda_package(f"pip=={pip_version}")
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment:
        raise NotSupportedError(
            "Environment.from_existing_conda_environment is not supported by mlpipe"
        )

    @staticmethod
    def get(
        workspace: Any, name: str, version: str | None = None, label: str | None = None
    ) -> Environment:
        """Curated v1 environments (``AzureML-...``) resolve to an empty environment here."""
        env = Environment(name)
        env.python.user_managed_dependencies = True
        return env

    def register(self, workspace: Any) -> Environment:
        return self

    def clone(self, new_name: str) -> Environment:
        env = copy.deepcopy(self)
        env.name = new_name
        return env

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.docker.base_image
            if self.docker.enabled or self.docker.base_image != DEFAULT_CPU_IMAGE
            else None,
            "dependencies": self.python.conda_dependencies.to_spec(),
            "user_managed_dependencies": bool(self.python.user_managed_dependencies),
            "environment_variables": {
                str(k): str(v) for k, v in sorted(self.environment_variables.items())
            },
        }


class MpiConfiguration:
    """MPI launch shape: ``node_count`` nodes x ``process_count_per_node`` processes."""

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1) -> None:
        self.process_count_per_node = process_count_per_node
        self.node_count = node_count


class PyTorchConfiguration:
    """torch.distributed launch shape; ``process_count`` is the total over all nodes."""

    def __init__(
        self,
        communication_backend: str = "Nccl",
        process_count: int | None = None,
        node_count: int = 1,
    ):
        self.communication_backend = communication_backend
        self.process_count = process_count
        self.node_count = node_count


class TensorflowConfiguration:
    """TF parameter-server training: workers and parameter servers (TF_CONFIG)."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1):
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count


class RunConfiguration:
    """How a step runs: its environment, node count and time limit."""

    def __init__(
        self,
        script: str | None = None,
        arguments: list | None = None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
        _history_enabled: bool | None = None,
        _path: str | None = None,
        _name: str | None = None,
        command: Any = None,
    ):
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.target = "local"
        self.environment = Environment("mlpipe-default")
        self.environment.python.user_managed_dependencies = True
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
            self.environment.python.user_managed_dependencies = False
        self.node_count = 1
        self.mpi = MpiConfiguration()
        self.tensorflow = TensorflowConfiguration()
        self.pytorch: PyTorchConfiguration | None = None
        self.distributed_job_config: Any = None
        self.max_run_duration_seconds: int | None = None
        self.docker = self.environment.docker
        self.command = command

    @property
    def environment_variables(self) -> dict[str, str]:
        return self.environment.environment_variables

    @environment_variables.setter
    def environment_variables(self, value: dict[str, str]) -> None:
        self.environment.environment_variables = dict(value)
