"""v1's curated environments (``Environment.get(ws, "AzureML-...")``) as package lists.

Azure ML published prebuilt images under these names. Here each is the list of packages that
mattered to a step (the Azure ML SDK packages of those images are left out: mlpipe replaces
them), installed like any other environment. v1 pinned them to the versions of their day, for
Python 3.6-3.8, whose wheels no longer install on a current Python; here they install the
versions current for the worker's Python, so ``v1_pins`` is documentation only. Pin versions
yourself (``env.python.conda_dependencies.add_pip_package("scikit-learn==1.5.2")``) on a clone.
"""

from __future__ import annotations

from typing import NamedTuple


class Curated(NamedTuple):
    pip_packages: tuple[str, ...]
    v1_pins: str  # what v1's image had, for docs/environments.md
    gpu: bool = False


_SKLEARN = ("scikit-learn", "numpy", "pandas", "scipy", "joblib")
_TORCH = ("torch", "torchvision", "numpy", "pandas", "tensorboard")
_TF = ("tensorflow", "numpy", "pandas", "tensorboard")

CURATED: dict[str, Curated] = {
    "AzureML-Minimal": Curated((), "python 3.6.2, azureml-core, azureml-defaults"),
    "AzureML-Tutorial": Curated(
        ("numpy", "pandas", "scikit-learn", "scipy", "matplotlib"),
        "python 3.6.2, azureml-sdk extras, scikit-learn, matplotlib, pandas",
    ),
    "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu": Curated(
        _SKLEARN, "python 3.7, scikit-learn 0.24.1, numpy, pandas, scipy, joblib"
    ),
    "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu": Curated(
        _SKLEARN, "python 3.8, scikit-learn 1.0.2, numpy, pandas, scipy, joblib"
    ),
    "AzureML-Scikit-learn-0.20.3": Curated(_SKLEARN, "python 3.6.2, scikit-learn 0.20.3"),
    "AzureML-PyTorch-1.6-CPU": Curated(_TORCH, "python 3.6.2, torch 1.6.0, torchvision 0.5.0"),
    "AzureML-PyTorch-1.6-GPU": Curated(
        _TORCH, "python 3.6.2, torch 1.6.0, torchvision 0.5.0, CUDA 10.1", gpu=True
    ),
    "AzureML-PyTorch-1.x-GPU": Curated(_TORCH, "python 3.6/3.8, torch 1.x, CUDA", gpu=True),
    "AzureML-pytorch-1.10-ubuntu18.04-py38-cuda11-gpu": Curated(
        _TORCH, "python 3.8, torch 1.10, CUDA 11", gpu=True
    ),
    "AzureML-TensorFlow-2.3-CPU": Curated(_TF, "python 3.6.2, tensorflow 2.3"),
    "AzureML-TensorFlow-2.3-GPU": Curated(_TF, "python 3.6.2, tensorflow-gpu 2.3", gpu=True),
    "AzureML-tensorflow-2.4-ubuntu18.04-py37-cuda11-gpu": Curated(
        _TF, "python 3.7, tensorflow 2.4, CUDA 11", gpu=True
    ),
    "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu": Curated(
        ("lightgbm", "scikit-learn", "numpy", "pandas"), "python 3.7, lightgbm 3.2.1"
    ),
    "AzureML-xgboost-0.9-ubuntu18.04-py37-cpu-inference": Curated(
        ("xgboost", "scikit-learn", "numpy", "pandas"), "python 3.7, xgboost 0.9"
    ),
    "AzureML-AutoML": Curated(
        ("scikit-learn", "numpy", "pandas", "scipy", "lightgbm", "xgboost"),
        "python 3.6.2, azureml-train-automl (AutoML itself is not supported)",
    ),
}


def curated(name: str) -> Curated:
    """The curated environment ``name``; an error listing the known names for any other."""
    from mlpipe_provider.errors import UserErrorException

    if name not in CURATED:
        raise UserErrorException(
            f"unknown curated environment {name!r}; mlpipe knows {sorted(CURATED)}. Use "
            "Environment.from_conda_specification / from_pip_requirements, or register your own "
            "environment with env.register(ws)"
        )
    return CURATED[name]
