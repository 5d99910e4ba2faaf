"""A step in a container: ``tokenize`` runs in a Docker image, ``summarize`` on the worker.

An Azure ML v1 program with only its imports changed, plus the compute target's mlpipe settings:
``backend="docker"`` and the ``image`` its steps run in. ``mlpipe compile
examples/docker/pipeline.py -o dags`` writes ``dags/docker_pipeline.py``; ``python pipeline.py``
builds the image if needed (``build_image.sh``: Debian bookworm + python3, no registry), writes
the input, uploads it and submits a run (the ``__main__`` guard keeps compiling from doing that).

In the container the input is mounted read-only and the output read-write at the worker's own
paths, there is no network (the target does not set ``network``), and the script still logs
metrics with ``Run.get_context().log``.
"""

from mlpipe_provider.sdk import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    DataReference,
    Experiment,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    Workspace,
)

IMAGE = "local/mlpipe-bookworm-python:1"

ws = Workspace.from_config()
datastore = ws.get_default_datastore()
try:
    docker_cpu = ComputeTarget(workspace=ws, name="docker-cpu")
except ComputeTargetException:
    docker_cpu = ComputeTarget.create(
        ws,
        "docker-cpu",
        AmlCompute.provisioning_configuration(
            vm_size="STANDARD_D2_V2", max_nodes=1, backend="docker", image=IMAGE
        ),
    )

corpus = DataReference(datastore, data_reference_name="corpus", path_on_datastore="corpus")
tokens = PipelineData("tokens", datastore=datastore)
summary = PipelineData("summary", datastore=datastore)

tokenize = PythonScriptStep(
    name="tokenize",
    script_name="tokenize_corpus.py",
    arguments=["--corpus", corpus, "--out", tokens],
    inputs=[corpus],
    outputs=[tokens],
    compute_target=docker_cpu,
    source_directory="src",
)
summarize = PythonScriptStep(
    name="summarize",
    script_name="summarize.py",
    arguments=["--tokens", tokens, "--out", summary],
    inputs=[tokens],
    outputs=[summary],
    compute_target="cpu-cluster",
    source_directory="src",
)

docker_pipeline = Pipeline(
    workspace=ws,
    steps=[summarize],
    description="Tokenize a corpus in a container (no network, input read-only), summarise locally.",
)


def write_corpus(folder: str = "data/corpus") -> None:
    from pathlib import Path

    texts = {
        "a.txt": "the quick brown fox jumps over the lazy dog\n",
        "b.txt": "a step in a container reads its input read-only\n",
    }
    for name, text in texts.items():
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def main():
    import subprocess
    from pathlib import Path

    subprocess.run([str(Path(__file__).parent / "build_image.sh"), IMAGE], check=True)
    write_corpus()
    datastore.upload("data/corpus", target_path="corpus", overwrite=True)
    run = Experiment(ws, "docker").submit(docker_pipeline)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("tokenize")[0].get_metrics())


if __name__ == "__main__":
    main()
