"""Azure ML v1's published-pipeline REST contract, served by Airflow's own API server.

v1 clients (curl scripts, Data Factory's "Machine Learning Execute Pipeline" activity, Logic
Apps, ``requests.post(published_pipeline.endpoint, ...)``) POST a v1 body to a published
pipeline's ``endpoint`` with a bearer token. The provider's Airflow plugin mounts this package's
FastAPI app under ``/mlpipe`` (``URL_PREFIX``), so those calls reach Airflow itself, behind
Airflow's authentication and authorization, and start the published pipeline's DAG the way
Airflow's own trigger route does.

This module is imported by the plugin in every Airflow process (scheduler, workers, ...), so it
imports nothing heavy: the FastAPI app is built on the first request the API server routes here.
It is run-time side: it imports none of the SDK, the compiler, the client or the CLI.
"""

from __future__ import annotations

from mlpipe_provider.lazy_asgi import LazyAsgiApp

#: where the API server mounts the app; ``published.endpoint`` URLs start with it
URL_PREFIX = "/mlpipe"
#: the v1 REST paths under URL_PREFIX (v1's ``.../pipelines/v1.0/.../PipelineRuns/...``)
API_ROOT = "/api/v1.0"
SUBMIT_PATH = API_ROOT + "/PipelineRuns/PipelineSubmit/{pipeline_id}"
ENDPOINT_ID_PATH = API_ROOT + "/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}"
ENDPOINT_NAME_PATH = API_ROOT + "/PipelineRuns/PipelineEndpointSubmit/Name/{name}"
RUN_PATH = API_ROOT + "/PipelineRuns/{run_id}"
STEP_RUNS_PATH = API_ROOT + "/PipelineRuns/{run_id}/StepRuns"


class LazyRestApp(LazyAsgiApp):
    """The v1 REST app (``rest/app.py``), built on its first request."""

    factory = "mlpipe_provider.rest.app:create_app"


rest_app = LazyRestApp()
