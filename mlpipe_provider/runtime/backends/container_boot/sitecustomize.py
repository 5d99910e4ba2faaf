"""Run by the container's Python at startup when the docker backend puts this folder on PYTHONPATH.

It appends the worker's site-packages folders (mounted read-only, listed in
``$MLPIPE_WORKER_SITE``) *after* the image's own, so a step script can import what mlpipe needs
(``from mlpipe_provider.sdk import Run``) while the image's packages keep precedence, the same
rule as local step environments. Then it runs the image's own ``sitecustomize``, if it has one,
which this file would otherwise hide. Standard library only: it runs on any image's Python.
"""

import importlib.util
import os
import site
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_IMAGE_PATH = list(sys.path)  # before the worker's folders: only the image's own hook is chained

for _folder in filter(None, os.environ.get("MLPIPE_WORKER_SITE", "").split(os.pathsep)):
    if os.path.isdir(_folder):
        site.addsitedir(_folder)

for _entry in _IMAGE_PATH:
    if not _entry or os.path.abspath(_entry) == _HERE:
        continue
    _candidate = os.path.join(_entry, "sitecustomize.py")
    if os.path.isfile(_candidate):
        _spec = importlib.util.spec_from_file_location("_image_sitecustomize", _candidate)
        if _spec and _spec.loader:
            try:
                _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
            except Exception as _exc:  # noqa: BLE001 - never stop the step for the image's hook
                print(f"mlpipe: the image's sitecustomize failed: {_exc!r}", file=sys.stderr)
        break
