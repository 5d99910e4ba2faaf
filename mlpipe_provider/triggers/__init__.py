"""Triggers: what mlpipe tasks wait on in Airflow's triggerer instead of in a worker slot."""
