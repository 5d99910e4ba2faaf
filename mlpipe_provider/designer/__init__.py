"""The pipelines designer: a visual editor, inside the Airflow UI, for v1 pipeline files.

It sits above the compiler (like ``client``): it opens a pipeline file through the compiler's
loader, shows it as a graph, validates an edited graph with the compiler's own checks and saves
it back as an ordinary v1 program. ``app.py`` is the FastAPI app the provider's plugin mounts in
the Airflow API server; everything heavy is imported only when a request needs it.
"""
