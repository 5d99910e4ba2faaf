"""v1's module-level constants, so ``azureml.core.VERSION`` and ``DEFAULT_CPU_IMAGE`` keep working.

Almost every v1 notebook starts by printing ``azureml.core.VERSION`` and many set
``docker.base_image = DEFAULT_CPU_IMAGE``; without these names a migrated program stops at its
first cell. The image names are v1's own strings: the docker backend recognises Azure ML's stock
images (``runtime.backends.images``) and runs the compute target's image instead, and the local
backend ignores images altogether, so using them is harmless.
"""

from __future__ import annotations

from mlpipe_provider.sdk.environment import DEFAULT_CPU_IMAGE

#: The v1 API level mlpipe mirrors (the last azureml-core release), not mlpipe's own version
#: (that is ``mlpipe_provider.__version__``). Programs print it or compare it with a minimum.
VERSION = "1.60.0"

#: v1's ``azureml.core.runconfig.DEFAULT_GPU_IMAGE`` (CUDA 11.1, cuDNN 8, Ubuntu 20.04).
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.1-cudnn8-ubuntu20.04"

#: v1 aliases the MPI images to the default ones.
MPI_CPU_IMAGE = DEFAULT_CPU_IMAGE
MPI_GPU_IMAGE = DEFAULT_GPU_IMAGE

__all__ = ["DEFAULT_CPU_IMAGE", "DEFAULT_GPU_IMAGE", "MPI_CPU_IMAGE", "MPI_GPU_IMAGE", "VERSION"]
