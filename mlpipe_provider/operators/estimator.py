"""Operators for ``EstimatorStep`` and ``MpiStep``: script steps with an environment and a launch shape.

They run exactly like ``PythonScriptStepOperator`` (the shape is in ``distribution``); separate
classes keep the step kind visible in the Airflow UI and in fingerprints.
"""

from __future__ import annotations

from mlpipe_provider.operators.script import PythonScriptStepOperator


class EstimatorStepOperator(PythonScriptStepOperator):
    """Run an Azure ML v1 estimator's entry script (PyTorch, TensorFlow, SKLearn or plain)."""

    ui_color = "#e3dcf2"


class MpiStepOperator(PythonScriptStepOperator):
    """Run an MPI job: ``node_count`` x ``process_count_per_node`` ranked processes."""

    ui_color = "#f2e3dc"
