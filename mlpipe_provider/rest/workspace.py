"""Which workspace the API server serves: where the published-pipeline registry is.

``$MLPIPE_WORKSPACE`` when set (docker-compose and Kubernetes deployments set it); otherwise the
folder holding Airflow's DAG folder, when that folder is a workspace's ``dags/`` (what
``mlpipe server up`` runs). Read per request: it is a few ``stat`` calls, and a server started
before the workspace existed finds it once it does.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlpipe_provider.config import CONFIG_FILE_NAME, WORKSPACE_ENV


def served_workspace() -> Path | None:
    override = os.environ.get(WORKSPACE_ENV)
    if override:
        return Path(override).resolve()
    from airflow.configuration import conf

    dags = Path(conf.get("core", "dags_folder")).resolve()
    if (dags.parent / CONFIG_FILE_NAME).is_file():
        return dags.parent
    return None
