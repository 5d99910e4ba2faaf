"""Estimator and MPI steps: a data-parallel "training" over ranks, then an MPI evaluation.

``estimate`` is an EstimatorStep whose PyTorch estimator asks for 2 nodes x 1 process (Gloo);
``score`` is an MpiStep whose node count is a PipelineParameter. On the local backend every rank
is a process on the worker with RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT set.
"""

from mlpipe_provider.sdk import (
    EstimatorStep,
    Gloo,
    MpiStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PyTorch,
    Workspace,
)

ws = Workspace.from_config()
cpu = ws.compute_targets["cpu-cluster"]
partials = PipelineData("partials", datastore=ws.get_default_datastore())
scores = PipelineData("scores", datastore=ws.get_default_datastore())
score_nodes = PipelineParameter("score_nodes", 2)

estimator = PyTorch(
    source_directory="src",
    entry_script="estimate.py",
    script_params={"--samples": 20000},
    compute_target=cpu,
    node_count=2,
    distributed_training=Gloo(),
    pip_packages=[],
    environment_variables={"ESTIMATE_SEED": "11"},
)
estimate = EstimatorStep(
    name="estimate",
    estimator=estimator,
    estimator_entry_script_arguments=["--out", partials],
    outputs=[partials],
    compute_target=cpu,
)
score = MpiStep(
    name="score",
    source_directory="src",
    script_name="score.py",
    arguments=["--partials", partials, "--out", scores],
    inputs=[partials],
    outputs=[scores],
    compute_target=cpu,
    node_count=score_nodes,
    process_count_per_node=1,
)

distributed_training = Pipeline(
    workspace=ws, steps=[score], description="Estimator + MPI ranks on the local backend."
)
