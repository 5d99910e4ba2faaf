"""Environment for a workspace's embedded Airflow (no servers, SQLite, DAGs from the workspace)."""

from __future__ import annotations

from pathlib import Path


def embedded_airflow_env(workspace_dir: Path, dags_dir: Path | None = None) -> dict[str, str]:
    home = Path(workspace_dir) / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir or Path(workspace_dir) / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
    }
