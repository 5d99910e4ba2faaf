"""mlpipe: Azure ML v1 style pipelines as Apache Airflow DAGs."""

__version__ = "0.1.0"


def get_provider_info() -> dict:
    """Airflow discovers the provider through this; package-name must equal the distribution."""
    return {
        "package-name": "mlpipe",
        "name": "mlpipe",
        "description": "Azure ML v1 style pipeline steps with content-addressed reuse.",
        "versions": [__version__],
    }
