"""The embedded Airflow: run a DAG in-process on a SQLite metadata DB inside the workspace."""
