"""Conda package specs as PyPI requirements, for workers that have no conda.

v1 programs list packages the conda way (``CondaDependencies.create(conda_packages=[...])``,
``Estimator(conda_packages=...)``). A worker with conda (or mamba/micromamba) builds a real conda
environment from them; a worker without one installs the same packages from PyPI with uv. This
module is that translation, kept as data (tables below) so that docs/environments.md can list it
and the compiler can refuse an unmappable package before anything runs.

The rules, in order:

* ``channel::name`` loses its channel (PyPI has one index);
* ``python`` and ``pip`` are not packages here: ``python=X.Y`` is a Python version request, and uv
  installs the pip packages without pip;
* :data:`RENAMED` names get their PyPI name (``pytorch`` -> ``torch``);
* :data:`DROPPED` names are system libraries (CUDA, BLAS, the C runtime) that PyPI wheels bundle:
  they are left out, with a note in the step log;
* :data:`NO_PYPI` names are programs and languages PyPI does not carry (R, a compiler, Node): an
  error, at compile time, naming the step, the environment and the package;
* every other name is the same on PyPI (``numpy``, ``scikit-learn``, ``pandas``, ...);
* versions: conda's ``=1.2`` and ``name 1.2`` mean "1.2 or any 1.2.x" (``==1.2.*``), ``==1.2`` is
  exact, ``>=``/``<``/``!=``/``,`` carry over, a build string (``=1.2=py38_0``, ``1.2 py38_0``)
  is dropped; ``|`` (either of two versions) has no PyPI form and is an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: conda name -> PyPI name
RENAMED: dict[str, str] = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "tensorflow-gpu": "tensorflow",
    "keras-gpu": "keras",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "python-graphviz": "graphviz",
    "pytables": "tables",
    "matplotlib-base": "matplotlib",
    "msgpack-python": "msgpack",
    "py-lightgbm": "lightgbm",
    "pyqt": "PyQt5",
    "tensorboardx": "tensorboardX",
}

#: conda names with nothing to install from PyPI: what the wheels already carry
DROPPED: dict[str, str] = {
    **dict.fromkeys(
        (
            "cudatoolkit",
            "cuda-toolkit",
            "cuda-version",
            "cuda-runtime",
            "cudnn",
            "nccl",
            "pytorch-cuda",
            "cpuonly",
            "magma",
            "magma-cuda",
        ),
        "CUDA libraries: the PyPI wheels of torch/tensorflow/jax bundle their own",
    ),
    **dict.fromkeys(
        (
            "mkl",
            "mkl-include",
            "mkl_fft",
            "mkl_random",
            "mkl-service",
            "intel-openmp",
            "llvm-openmp",
            "_openmp_mutex",
            "blas",
            "libblas",
            "libcblas",
            "liblapack",
            "openblas",
            "libopenblas",
        ),
        "BLAS/OpenMP libraries: numpy and scipy wheels bundle OpenBLAS",
    ),
    **dict.fromkeys(
        (
            "libgcc",
            "libgcc-ng",
            "libgomp",
            "libstdcxx-ng",
            "libgfortran",
            "libgfortran-ng",
            "libgfortran5",
            "_libgcc_mutex",
            "ld_impl_linux-64",
            "ca-certificates",
            "openssl",
            "libffi",
            "zlib",
            "libzlib",
            "xz",
            "bzip2",
            "sqlite",
            "libsqlite",
            "readline",
            "ncurses",
            "tk",
            "tzdata",
            "libuuid",
            "libxgboost",
            "libprotobuf",
            "arrow-cpp",
            "libarrow",
            "jpeg",
            "libpng",
            "freetype",
        ),
        "a system library of the conda distribution: the worker's Python and the PyPI wheels "
        "provide it",
    ),
}

#: conda names with no PyPI equivalent: a step that needs one cannot run without conda
NO_PYPI: dict[str, str] = {
    "r-base": "R is not on PyPI",
    "r-essentials": "R is not on PyPI",
    "nodejs": "Node.js is not on PyPI",
    "gcc": "a C compiler is not on PyPI",
    "gxx": "a C++ compiler is not on PyPI",
    "gcc_linux-64": "a C compiler is not on PyPI",
    "gxx_linux-64": "a C++ compiler is not on PyPI",
    "gfortran": "a Fortran compiler is not on PyPI",
    "gfortran_linux-64": "a Fortran compiler is not on PyPI",
    "compilers": "compilers are not on PyPI",
    "make": "make is not on PyPI",
    "git": "git is not on PyPI",
    "openjdk": "Java is not on PyPI",
    "ffmpeg": "the ffmpeg program is not on PyPI",
    "graphviz": "the Graphviz programs are not on PyPI (the Python binding is python-graphviz)",
    "cudatoolkit-dev": "the CUDA compiler is not on PyPI",
}

_SPEC_RE = re.compile(
    r"^(?:(?P<channel>[^\s:]+)::)?(?P<name>[A-Za-z0-9_][A-Za-z0-9_.\-]*)(?P<rest>.*)$"
)
_VERSION_RE = re.compile(r"^[0-9A-Za-z.*+!_]+$")
_OP_RE = re.compile(r"^(==|>=|<=|!=|~=|>|<|=)?\s*(.+)$")


class UnmappableCondaPackage(ValueError):
    """A conda spec that no PyPI requirement can stand for (the message says why)."""


@dataclass(frozen=True)
class Mapped:
    """One conda spec's PyPI form: ``requirement`` is None when the package is dropped."""

    conda: str
    requirement: str | None
    note: str | None = None  # set when the PyPI form differs from the conda spec

    @property
    def substituted(self) -> bool:
        return self.note is not None


def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def split_spec(spec: str) -> tuple[str, str]:
    """``(name, version part)`` of a conda spec, without its channel; raises on garbage."""
    match = _SPEC_RE.match(spec.strip())
    if not match:
        raise UnmappableCondaPackage(f"{spec!r} is not a conda package spec")
    return match.group("name"), match.group("rest").strip()


def is_python(spec: str) -> bool:
    try:
        return normalise_name(split_spec(spec)[0]) == "python"
    except UnmappableCondaPackage:
        return False


def python_request(spec: str) -> str | None:
    """The version a conda ``python`` spec asks for (``python=3.8`` -> ``3.8``), or None."""
    _name, rest = split_spec(spec)
    if not rest:
        return None
    return _pep440_version(rest, spec).lstrip("=").removesuffix(".*") or None


def _one_clause(clause: str, spec: str) -> str:
    match = _OP_RE.match(clause.strip())
    if not match:
        raise UnmappableCondaPackage(f"{spec!r}: cannot read version {clause!r}")
    op, version = match.group(1), match.group(2).strip()
    if not _VERSION_RE.match(version):
        raise UnmappableCondaPackage(f"{spec!r}: cannot read version {version!r}")
    if op in (None, "="):
        # conda's fuzzy match: 1.2 means 1.2, 1.2.0, 1.2.5, ...
        return f"=={version}" if version.endswith("*") else f"=={version.rstrip('.')}.*"
    if "*" in version and op != "==":
        raise UnmappableCondaPackage(f"{spec!r}: {op}{version} has no PyPI form")
    return f"{op}{version}"


def _pep440_version(rest: str, spec: str) -> str:
    """Conda's version part (``=1.2``, ``>=1,<2``, ``1.2 py38_0``, ``=1.2=h123``) as PEP 440."""
    if "|" in rest:
        raise UnmappableCondaPackage(
            f"{spec!r}: conda's '|' (either version) has no PyPI form; pin one version"
        )
    rest = rest.strip()
    if rest.startswith("[") or "[" in rest:
        raise UnmappableCondaPackage(f"{spec!r}: conda's [key=value] selectors have no PyPI form")
    # build string: '1.2 py38_0' (space form) or '=1.2=py38_0' / '==1.2=py38_0'
    version_part = rest.split()[0] if " " in rest and not re.match(r"^[<>=!~]+\s", rest) else rest
    version_part = version_part.replace(" ", "")
    if version_part.startswith("==") and version_part.count("=") > 2:
        version_part = "==" + version_part[2:].split("=", 1)[0]
    elif version_part.startswith("=") and not version_part.startswith("=="):
        version_part = "=" + version_part[1:].split("=", 1)[0]
    return ",".join(_one_clause(c, spec) for c in version_part.split(",") if c.strip())


def map_conda_package(spec: str) -> Mapped:
    """The PyPI requirement for one conda spec (see the module docstring for the rules)."""
    original = spec.strip()
    name, rest = split_spec(original)
    key = normalise_name(name)
    if key == "python":
        raise UnmappableCondaPackage(f"{original!r} is a Python version, not a package")
    if key in NO_PYPI or key.startswith("r-"):
        why = NO_PYPI.get(key, "R packages are not on PyPI")
        raise UnmappableCondaPackage(f"{original!r} has no PyPI equivalent ({why})")
    if key == "pip":
        return Mapped(original, None, "uv installs the pip packages; pip itself is not needed")
    if key in DROPPED:
        return Mapped(original, None, DROPPED[key])
    version = _pep440_version(rest, original) if rest else ""
    pypi_name = RENAMED.get(key, name)
    requirement = f"{pypi_name}{version}"
    notes = []
    if pypi_name != name:
        notes.append(f"named {pypi_name!r} on PyPI")
    channel = _SPEC_RE.match(original).group("channel")  # type: ignore[union-attr]
    if channel:
        notes.append(f"channel {channel!r} dropped")
    if rest and version != rest.replace(" ", ""):
        notes.append(f"conda version {rest!r} read as {version!r}")
    return Mapped(original, requirement, "; ".join(notes) or None)


def check_conda_packages(specs: list[str]) -> list[tuple[str, str]]:
    """``(spec, reason)`` for each spec that cannot be installed without conda."""
    problems = []
    for spec in specs:
        if is_python(spec):
            try:
                python_request(spec)
            except UnmappableCondaPackage as exc:
                problems.append((spec, str(exc)))
            continue
        try:
            map_conda_package(spec)
        except UnmappableCondaPackage as exc:
            problems.append((spec, str(exc)))
    return problems
