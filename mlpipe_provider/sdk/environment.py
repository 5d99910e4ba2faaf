"""Software environments (v1's ``Environment``, ``CondaDependencies``, ``RunConfiguration``).

They are descriptions: the compiler turns them into a plain dict (``to_spec``) that is written
into the DAG file and hashed into each step's fingerprint, so changing a package re-runs the step.
"""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import NotSupportedError, UserErrorException

module_logger = logging.getLogger("azureml.core.environment")

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
_PIP_COMMENT_RE = re.compile(r"(^|\s)#.*$")


_PY_VERSION_RE = re.compile(r"(\d+)\.(\d+)(\.(\d+))?([ab](\d+))?$")
_PY_VERSION_SEARCH = re.compile(r"(\d+)\.(\d+)(\.(\d+))?([ab](\d+))?")
_YAML_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
_TF_DEFAULT_VERSION = "2.2.0"


def _package_name(value: str) -> str:
    """v1's rule: the name before any extras or version operator (a wheel: its first part)."""
    if value.endswith(".whl"):
        return re.split("-", re.split("/", value)[-1])[0]
    return re.split(r"[\[=|<>~!]", value)[0].strip()


def _is_python(value: str) -> bool:
    return isinstance(value, str) and _package_name(value.split("::")[-1]) == "python"


class CondaDependencies:
    """Conda and pip package lists, as v1 kept them (a conda environment YAML in memory).

    Differences from v1 (docs/environments.md): an empty object has no ``azureml-defaults``
    (steps import ``mlpipe_provider.sdk``, not the retired SDK) and no Python pin, because v1's
    default pin (3.8.13) was the SDK's, not the user's: without one a step runs on the worker's
    Python. The default channel is ``conda-forge``.
    """

    DEFAULT_NUMBER_OF_CONDA_PACKAGES = 0
    DEFAULT_NUMBER_OF_PIP_PACKAGES = 0

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
        self._name = "project_environment"
        if conda_dependencies_file_path:
            self._load(self._read_yaml(Path(conda_dependencies_file_path)))
        elif _underlying_structure:
            self._load(_underlying_structure)

    @staticmethod
    def _read_yaml(path: Path) -> dict:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise UserErrorException(f"cannot read conda specification {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise UserErrorException(f"{path} is not a valid conda YAML file: {exc}") from None
        return data

    def _load(self, data: Any) -> None:
        """Take v1's structure: name, channels, dependencies (strings and one ``pip:`` list)."""
        if not isinstance(data, dict):
            raise UserErrorException("Environment error: not a valid YAML structure")
        for key in data:
            if str(key) not in _YAML_KEYS:
                raise UserErrorException(
                    f"Environment error: unknown {key} key in environment specification"
                )
        self._name = str(data.get("name") or self._name)
        self._channels = [str(c) for c in data.get("channels") or []]
        for item in data.get("dependencies") or []:
            if isinstance(item, dict) and "pip" in item:
                for entry in item["pip"] or []:
                    entry = str(entry).strip()
                    target = self._pip_options if entry.startswith("-") else self._pip_packages
                    target.append(entry)
            elif _is_python(str(item)):
                self._python_version = self._get_version(str(item)) or None
                if self._python_version is None and str(item).strip() != "python":
                    self._conda_packages.append(str(item))  # e.g. python>=3.8: kept as written
            elif isinstance(item, (str, int, float)):
                self._conda_packages.append(str(item))

    # --- construction --------------------------------------------------------------------
    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """v1's factory. ``pin_sdk_version`` is accepted and has nothing to pin here."""
        deps = CondaDependencies()
        if pip_indexurl:
            deps.set_pip_index_url(f"--index-url {pip_indexurl}")
        if python_version:
            deps.set_python_version(python_version)
        for package in pip_packages or []:
            deps.add_pip_package(package)
        for package in conda_packages or []:
            deps.add_conda_package(package)
        return deps

    @staticmethod
    def merge_requirements(requirements: list[str]) -> list[str]:
        """Merge requirements naming the same package: ``["a>1", "a<3"]`` -> ``["a>1,<3"]``."""
        merged: dict[str, list[str]] = {}
        for req in requirements:
            name = _package_name(req)
            merged.setdefault(name, []).append(req[len(name) :].strip())
        return [f"{name}{','.join(x for x in specs if x)}" for name, specs in merged.items()]

    @staticmethod
    def sdk_origin_url() -> str:
        return "https://pypi.python.org/simple"

    def _merge_dependencies(self, conda_dependencies: CondaDependencies | None) -> None:
        if not conda_dependencies:
            return
        for channel in conda_dependencies.conda_channels:
            self.add_channel(channel)
        for package in conda_dependencies.conda_packages:
            self.add_conda_package(package)
        for package in conda_dependencies.pip_packages:
            self.add_pip_package(package)

    # --- python --------------------------------------------------------------------------
    @staticmethod
    def _get_version(value: str) -> str | None:
        match = _PY_VERSION_SEARCH.search(value)
        return match.group() if match else None

    def get_python_version(self) -> str | None:
        return self._python_version

    def set_python_version(self, version: str) -> None:
        self._python_version = str(version)

    # --- conda ---------------------------------------------------------------------------
    @property
    def conda_channels(self) -> list[str]:
        return list(self._channels)

    @property
    def conda_packages(self) -> list[str]:
        return list(self._conda_packages)

    def add_channel(self, channel: str) -> None:
        if channel not in self._channels:
            self._channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        self._channels = [c for c in self._channels if c != channel]

    def add_conda_package(self, conda_package: str) -> None:
        if _is_python(conda_package):
            version = self._get_version(conda_package)
            if version and conda_package.replace(" ", "").startswith(("python=", "python==")):
                self.set_python_version(version)
                return
        if conda_package not in self._conda_packages:
            self._conda_packages.append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        if _is_python(conda_package):
            raise UserErrorException("python must not be removed from conda dependencies")
        self._conda_packages = [p for p in self._conda_packages if p != conda_package]

    def add_tensorflow_conda_package(self, core_type: str = "cpu", version: str | None = None):
        self._validate_core_type(core_type)
        self._conda_packages = [p for p in self._conda_packages if not p.startswith("tensorflow")]
        suffix = "-gpu" if core_type.lower() == "gpu" else ""
        self.add_conda_package(f"tensorflow{suffix}={version or _TF_DEFAULT_VERSION}")

    # --- pip -----------------------------------------------------------------------------
    @property
    def pip_packages(self) -> list[str]:
        return list(self._pip_packages)

    @property
    def pip_options(self) -> list[str]:
        return list(self._pip_options)

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement; one for the same package is replaced, as in v1."""
        if pip_package.startswith("-"):
            raise UserErrorException(f"Invalid package name {pip_package}")
        self.remove_pip_package(pip_package)
        self._pip_packages.append(pip_package)

    def remove_pip_package(self, pip_package: str) -> None:
        if pip_package.startswith("-"):
            raise UserErrorException(f"Invalid package name {pip_package}")
        name = _package_name(pip_package)
        self._pip_packages = [p for p in self._pip_packages if _package_name(p) != name]

    def set_pip_option(self, pip_option: str) -> None:
        """Add a pip option; one with the same flag is replaced, as in v1."""
        if not pip_option.startswith("-"):
            raise UserErrorException(f"Invalid pip option {pip_option}")
        flag = pip_option.split()[0]
        for i, existing in enumerate(self._pip_options):
            if existing.split()[0] == flag:
                self._pip_options[i] = pip_option
                return
        self._pip_options.append(pip_option)

    def set_pip_index_url(self, index_url: str) -> None:
        self.set_pip_option(index_url)

    def remove_pip_option(self, pip_option: str) -> None:
        if not pip_option.startswith("-"):
            raise UserErrorException(f"Invalid pip option {pip_option}")
        flag = pip_option.split()[0]
        self._pip_options = [o for o in self._pip_options if o.split()[0] != flag]

    def set_pip_requirements(self, pip_requirements: list[str]) -> None:
        """Replace the whole pip section (packages and options)."""
        self._pip_packages = [p for p in pip_requirements if not p.startswith("-")]
        self._pip_options = [p for p in pip_requirements if p.startswith("-")]

    def add_cntk_package(self, core_type: str = "cpu") -> None:
        self._validate_core_type(core_type)
        self._pip_packages = [p for p in self._pip_packages if not p.startswith("cntk")]
        self.add_pip_package(f"cntk{'-gpu' if core_type.lower() == 'gpu' else ''}==2.7")

    def add_tensorflow_pip_package(self, core_type: str = "cpu", version: str | None = None):
        self._validate_core_type(core_type)
        self._pip_packages = [p for p in self._pip_packages if not p.startswith("tensorflow")]
        suffix = "-gpu" if core_type.lower() == "gpu" else ""
        self.add_pip_package(f"tensorflow{suffix}=={version or _TF_DEFAULT_VERSION}")

    @staticmethod
    def _validate_core_type(core_type: str) -> None:
        if core_type not in ("cpu", "gpu"):
            raise UserErrorException(f"Invalid core type {core_type}. Only accept 'cpu' or 'gpu'")

    def get_default_number_of_packages(self) -> tuple[int, int]:
        return self.DEFAULT_NUMBER_OF_CONDA_PACKAGES, self.DEFAULT_NUMBER_OF_PIP_PACKAGES

    # --- serialising ---------------------------------------------------------------------
    @property
    def _conda_dependencies(self) -> dict[str, Any]:
        """v1's underlying structure (a copy: change it through the methods)."""
        dependencies: list[Any] = []
        if self._python_version:
            dependencies.append(f"python={self._python_version}")
        dependencies += self._conda_packages
        if self._pip_packages or self._pip_options:
            dependencies.append({"pip": [*self._pip_packages, *self._pip_options]})
        return {
            "name": self._name,
            "dependencies": dependencies,
            "channels": list(self._channels),
        }

    def as_dict(self) -> dict[str, Any]:
        return self._conda_dependencies

    def serialize_to_string(self) -> str:
        import yaml

        class _Indented(yaml.SafeDumper):
            def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
                return super().increase_indent(flow, False)  # lists indented under their key

        return yaml.dump(
            self._conda_dependencies, Dumper=_Indented, sort_keys=False, default_flow_style=False
        )

    def save(self, path: str | None = None) -> str:
        if not path:
            raise UserErrorException("save() needs the path of the file to write")
        if Path(path).is_dir():
            raise UserErrorException(
                "Cannot save a conda environment specification file to a directory. Please "
                "specify a fully qualified path along with the file name to save the file."
            )
        parent = Path(path).parent
        if str(parent) not in ("", ".") and not parent.is_dir():
            raise UserErrorException(
                "Cannot save the conda environment specification file to an invalid path."
            )
        Path(path).write_text(self.serialize_to_string(), encoding="utf-8")
        return path

    def save_to_file(self, base_directory: str, conda_file_path: str | None = None) -> str:
        """Deprecated in v1 (use ``save``): writes under ``base_directory``, returns the path."""
        relative = conda_file_path or ".azureml/auto_conda_dependencies.yml"
        full = Path(base_directory) / relative
        full.parent.mkdir(parents=True, exist_ok=True)
        self.save(str(full))
        return relative

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "conda_packages": list(self._conda_packages),
            "pip_packages": list(self._pip_packages),
            "pip_options": list(self._pip_options),
            "python_version": self._python_version,
        }
        if self._conda_packages:  # channels mean something only to a conda build
            spec["channels"] = list(self._channels)
        return spec


class PythonSection:
    """v1's ``environment.python``.

    ``user_managed_dependencies`` is what the program set; left unset it is v1's default
    (False: the packages are installed), except on a bare ``RunConfiguration()``, whose
    environment runs on the worker's interpreter until packages are added to it, so that v1's
    ``runconfig.environment.python.conda_dependencies = CondaDependencies.create(...)`` installs
    them without the program also setting the flag.
    """

    def __init__(self, _user_managed_default: bool = False) -> None:
        self.conda_dependencies = CondaDependencies()
        self._user_managed: bool | None = None
        self._user_managed_default = _user_managed_default
        self.interpreter_path = "python"
        self.conda_dependencies_file: str | None = None

    @property
    def user_managed_dependencies(self) -> bool:
        if self._user_managed is not None:
            return self._user_managed
        deps = self.conda_dependencies
        has_packages = bool(deps.pip_packages or deps.conda_packages or deps.get_python_version())
        return self._user_managed_default and not has_packages

    @user_managed_dependencies.setter
    def user_managed_dependencies(self, value: bool) -> None:
        self._user_managed = bool(value)


_GPU_SUPPORT_NOTICE = (
    "'gpu_support' is no longer necessary; AzureML now automatically detects and uses nvidia "
    "docker extension when it is available. It will be removed in a future release."
)


class DockerSection:
    """An environment's Docker settings; also v1's ``DockerConfiguration`` (the keywords below),
    which ``ScriptRunConfig(docker_runtime_config=...)`` takes. Kept as data: a step's container
    settings come from its compute target (docs/backends.md)."""

    def __init__(
        self,
        use_docker: bool | None = None,
        arguments: list[str] | None = None,
        shared_volumes: bool | None = None,
        shm_size: str | None = None,
    ) -> None:
        self.enabled = bool(use_docker)
        self.use_docker = use_docker
        self.shared_volumes = shared_volumes
        self.base_image: str | None = DEFAULT_CPU_IMAGE
        self.base_dockerfile: str | None = None
        self.shm_size: str | None = shm_size
        self.arguments: list[str] = list(arguments or [])

    @property
    def gpu_support(self) -> bool:
        """Deprecated in v1: GPUs are found where they exist; reads as True, with v1's notice."""
        module_logger.warning(_GPU_SUPPORT_NOTICE)
        return True

    @gpu_support.setter
    def gpu_support(self, _value: Any) -> None:
        module_logger.warning(_GPU_SUPPORT_NOTICE)


class SparkSection:
    """v1's ``environment.spark``: Maven repositories and packages for a Spark run.

    Kept as data, so programs that set it (``spark.precache_packages = False`` is common) run
    unchanged; no step runs Spark here, so a step whose environment names packages is refused
    when the pipeline compiles.
    """

    def __init__(
        self,
        repositories: list | None = None,
        packages: list | None = None,
        precache_packages: bool = True,
    ) -> None:
        self.repositories = list(repositories or [])
        self.packages = list(packages or [])
        self.precache_packages = precache_packages


class Environment:
    """A named software environment."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not name:
            raise UserErrorException("Environment name must be a non-empty string")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.spark = SparkSection()
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
            if line.startswith("-"):  # --extra-index-url URL and friends, kept in order
                env.python.conda_dependencies._pip_options.append(line)
            elif line:
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
        """An environment with the packages of a local conda environment (``conda env export``).

        It needs conda on this machine; without one there is no such environment to read.
        """
        import os
        import shutil
        import subprocess
        import tempfile

        conda = os.environ.get("MLPIPE_CONDA") or next(
            (found for tool in ("conda", "mamba") if (found := shutil.which(tool))), None
        )
        if not conda:
            raise NotSupportedError(
                "Environment.from_existing_conda_environment needs conda on this machine, and none "
                "was found (PATH, or $MLPIPE_CONDA); export the environment where it exists "
                "(`conda env export -n NAME > env.yml`) and use "
                "Environment.from_conda_specification(name, 'env.yml')"
            )
        result = subprocess.run(
            [conda, "env", "export", "--no-builds", "-n", conda_environment_name],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise UserErrorException(
                f"conda environment {conda_environment_name!r}: `conda env export` failed: "
                f"{result.stderr.strip()[-500:]}"
            )
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
            handle.write(
                "\n".join(
                    line for line in result.stdout.splitlines() if not line.startswith("prefix:")
                )
            )
        try:
            return Environment.from_conda_specification(name, handle.name)
        finally:
            os.unlink(handle.name)

    @staticmethod
    def get(
        workspace: Any, name: str, version: str | None = None, label: str | None = None
    ) -> Environment:
        """A registered environment, or one of v1's curated ``AzureML-...`` environments
        (mlpipe_provider/sdk/curated_environments.py: their packages, at current versions)."""
        from mlpipe_provider.sdk import environment_registry

        found = environment_registry.load(workspace, name, version)
        if found is not None:
            return found
        if name.startswith("AzureML-"):
            from mlpipe_provider.sdk.curated_environments import curated

            entry = curated(name)
            env = Environment(name)
            for package in entry.pip_packages:
                env.python.conda_dependencies.add_pip_package(package)
            env.version = "1"
            return env
        known = sorted(environment_registry.list_names(workspace))
        raise UserErrorException(
            f"environment {name!r}"
            + (f" version {version!r}" if version else "")
            + f" is not registered in this workspace (registered: {known}); register it with "
            "env.register(ws), or use a curated 'AzureML-...' name"
        )

    @staticmethod
    def list(workspace: Any) -> dict[str, Environment]:
        """Registered environments by name (latest version), and the curated ones, as in v1."""
        from mlpipe_provider.sdk import environment_registry
        from mlpipe_provider.sdk.curated_environments import CURATED

        found = {name: Environment.get(workspace, name) for name in CURATED}
        for name in environment_registry.list_names(workspace):
            found[name] = Environment.get(workspace, name)
        return dict(sorted(found.items()))

    def register(self, workspace: Any) -> Environment:
        """Store this definition in the workspace under the next version number."""
        from mlpipe_provider.sdk import environment_registry

        return environment_registry.save(workspace, self)

    @staticmethod
    def add_private_pip_wheel(workspace: Any, file_path: str, exist_ok: bool = False) -> str:
        """Keep a wheel in the workspace; the returned path goes into ``add_pip_package``."""
        import shutil

        source = Path(file_path)
        if source.suffix != ".whl" or not source.is_file():
            raise UserErrorException(f"{file_path!r} is not a wheel file (*.whl)")
        target = Path(workspace._dir) / "environments" / ".wheels" / source.name
        if target.exists() and not exist_ok:
            raise UserErrorException(
                f"a private wheel named {source.name!r} exists already (pass exist_ok=True)"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target)

    def save_to_directory(self, path: str, overwrite: bool = False) -> None:
        """v1's layout: ``azureml_environment.json`` and ``conda_dependencies.yml`` in ``path``."""
        import json

        from mlpipe_provider.sdk import environment_registry

        folder = Path(path)
        definition = folder / "azureml_environment.json"
        if definition.exists() and not overwrite:
            raise UserErrorException(f"{definition} exists (pass overwrite=True)")
        folder.mkdir(parents=True, exist_ok=True)
        record = environment_registry.record_of(self)
        definition.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        self.python.conda_dependencies.save(str(folder / "conda_dependencies.yml"))

    @staticmethod
    def load_from_directory(path: str) -> Environment:
        import json

        from mlpipe_provider.sdk import environment_registry

        folder = Path(path)
        try:
            record = json.loads((folder / "azureml_environment.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserErrorException(f"no environment definition in {folder}: {exc}") from None
        env = environment_registry.from_record(record)
        conda_file = folder / "conda_dependencies.yml"
        if conda_file.is_file():
            env.python.conda_dependencies = CondaDependencies(str(conda_file))
        return env

    def get_image_details(self, workspace: Any) -> Any:
        raise NotSupportedError(
            "Environment.get_image_details: mlpipe builds no images for environments; local "
            "steps run in uv virtualenvs (docs/environments.md), docker steps in their base_image"
        )

    def build(self, workspace: Any, image_build_compute: Any = None) -> Any:
        raise NotSupportedError(
            "Environment.build: mlpipe builds environments on the worker when a step first "
            "needs one (docs/environments.md); there is no image build to start"
        )

    def build_local(self, workspace: Any, platform: Any = None, **kwargs: Any) -> Any:
        raise NotSupportedError(
            "Environment.build_local: mlpipe builds environments on the worker when a step first "
            "needs one (docs/environments.md); `mlpipe env ls` lists them"
        )

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
        self.environment.python._user_managed_default = True
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
