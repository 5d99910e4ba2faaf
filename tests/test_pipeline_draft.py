"""``PipelineDraft``: create/get/list/update/submit_run/publish/delete from Python.

The registry test runs nothing; one run test submits the draft for real (a background run on
the embedded Airflow, as ``Experiment.submit`` does) and publishes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_script

from mlpipe_provider.errors import PipelineValidationError, UserErrorException
from mlpipe_provider.sdk import (
    Pipeline,
    PipelineDraft,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
)

WRITER = """
    import os, sys
    with open(os.environ["MLPIPE_TEST_CALLS"], "a") as log:
        log.write(f"{sys.argv[1]}:{sys.argv[2]}\\n")
"""


def pipeline(ws, project, *, word: str = "hello", steps: int = 1) -> Pipeline:
    write_script(project / "src", "writer.py", WRITER)
    return Pipeline(
        ws,
        [
            PythonScriptStep(
                "writer.py",
                name=f"writer{i}",
                arguments=[f"step{i}", PipelineParameter("word", word)],
                source_directory=str(project / "src"),
            )
            for i in range(steps)
        ],
        description="writes a word",
    )


def test_create_get_list_update_save_delete(ws, project):
    draft = PipelineDraft.create(
        ws,
        pipeline(ws, project),
        name="words",
        experiment_name="words-exp",
        pipeline_parameters={"word": "hi"},
        tags={"team": "a"},
        properties={"owner": "me"},
    )
    assert (draft.name, draft.experiment_name, draft.description) == (
        "words",
        "words-exp",
        "writes a word",
    )
    assert draft.pipeline_parameters == {"word": "hi"} and draft.tags == {"team": "a"}
    assert (ws._dir / "drafts" / f"{draft.id}.json").is_file()
    other = PipelineDraft.create(ws, pipeline(ws, project, steps=2), name="other", tags={"x": "1"})
    assert other.experiment_name == "other"  # v1 leaves it optional: the draft's name

    again = PipelineDraft.get(ws, draft.id)
    assert again == draft and again.properties == {"owner": "me"}
    assert {d.name for d in PipelineDraft.list(ws)} == {"words", "other"}
    assert [d.name for d in PipelineDraft.list(ws, tags={"team": "a"})] == ["words"]
    assert [d.name for d in PipelineDraft.list(ws, tags={"x": None})] == ["other"]

    draft.update(pipeline=pipeline(ws, project, steps=2), description="two writers", tags={})
    fresh = PipelineDraft.get(ws, draft.id)
    assert fresh.get_step_names() == ["writer0", "writer1"]
    assert fresh.description == "two writers" and fresh.tags == {}
    assert fresh.pipeline_parameters == {"word": "hi"}  # kept: still fits the new pipeline

    saved = json.loads(Path(fresh.save(str(project))).read_text())
    assert saved["id"] == draft.id and saved["graph"]["steps"]

    with pytest.raises(UserErrorException, match="pipeline_parameters"):
        draft.update(pipeline_parameters={"nope": 1})
    with pytest.raises(UserErrorException, match="name"):
        PipelineDraft.create(ws, pipeline(ws, project), name="../escape")
    bad = Pipeline(
        ws, [PythonScriptStep("missing.py", name="m", source_directory=str(project / "src"))]
    )
    with pytest.raises(PipelineValidationError, match="missing.py"):
        PipelineDraft.create(ws, bad, name="bad")
    with pytest.raises(PipelineValidationError, match="missing.py"):
        draft.update(pipeline=bad)
    assert PipelineDraft.get(ws, draft.id).get_step_names() == ["writer0", "writer1"]

    other.delete()
    assert [d.name for d in PipelineDraft.list(ws)] == ["words"]
    with pytest.raises(UserErrorException, match="no pipeline draft"):
        PipelineDraft.get(ws, other.id)
    with pytest.raises(UserErrorException, match="does not exist"):
        other.delete()


def test_submit_run_finishes_and_publish_freezes_the_draft(ws, project, monkeypatch):
    calls = project / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    draft = PipelineDraft.create(
        ws, pipeline(ws, project), name="words", pipeline_parameters={"word": "draft"}
    )
    run = draft.submit_run()
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert calls.read_text().split() == ["step0:draft"]
    assert run.get_tags()["azureml.pipelineDraftId"] == draft.id
    assert PipelineDraft.get(ws, draft.id).last_submitted_pipeline_run_id == run.id

    published = draft.publish()
    assert isinstance(published, PublishedPipeline) and published.name == "words"
    assert PublishedPipeline.get(ws, published.id).get_step_names() == ["writer0"]
    # the draft stays editable after publishing; the published pipeline does not change
    draft.update(pipeline=pipeline(ws, project, steps=2))
    assert PublishedPipeline.get(ws, published.id).get_step_names() == ["writer0"]


def test_migrate_maps_v1_pipeline_draft_imports():
    from mlpipe_provider.cli.migrate import migrate_source

    source = (
        "from azureml.pipeline.core.pipeline_draft import PipelineDraft\n"
        "from azureml.pipeline.core import PipelineDraft as Draft\n"
        "draft = PipelineDraft.create\n"
    )
    migrated, findings = migrate_source(source)
    assert migrated.splitlines()[:2] == [
        "from mlpipe_provider.sdk import PipelineDraft",
        "from mlpipe_provider.sdk import PipelineDraft as Draft",
    ]
    assert findings == []  # nothing unsupported or unmapped left
