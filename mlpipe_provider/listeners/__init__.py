"""Airflow listeners the provider's plugin registers (``plugin.py``)."""
