"""The client: submits, follows, publishes and schedules compiled pipelines.

It sits between the compiler (which it calls to render DAG files) and the CLI, and it is what the
SDK's v1 verbs reach through ``mlpipe_provider/sdk/services.py``: on the embedded Airflow (a
background process per run) or, when the workspace config names a server, over its REST API.
"""
