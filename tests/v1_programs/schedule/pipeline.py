# Schedules for a published pipeline: a time-based schedule that fires every other day at
# 22:30, a weekly one on two week days, listing, disabling and re-enabling them.

import azureml.core
from azureml.core import Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.pipeline.core import Pipeline, PublishedPipeline
from azureml.pipeline.core.schedule import Schedule, ScheduleRecurrence, TimeZone
from azureml.pipeline.steps import PythonScriptStep

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()

try:
    aml_compute = ComputeTarget(workspace=ws, name="cpu-cluster")
except ComputeTargetException:
    provisioning_config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2", max_nodes=2
    )
    aml_compute = ComputeTarget.create(ws, "cpu-cluster", provisioning_config)
    aml_compute.wait_for_completion(show_output=True)

hello_step = PythonScriptStep(
    name="hello",
    script_name="hello.py",
    compute_target=aml_compute,
    source_directory="src",
    allow_reuse=True,
)
pipeline = Pipeline(workspace=ws, steps=[hello_step])
published_pipeline = pipeline.publish(
    name="Hello_Schedule", description="a pipeline on a schedule", continue_on_step_failure=True
)
pub_pipeline_id = published_pipeline.id
print("Newly published pipeline id:", pub_pipeline_id)

every_other_night = ScheduleRecurrence(frequency="Day", interval=2, hours=[22], minutes=[30])
nightly = Schedule.create(
    workspace=ws,
    name="Every_other_night",
    pipeline_id=pub_pipeline_id,
    experiment_name="Schedule_Run",
    recurrence=every_other_night,
    wait_for_provisioning=True,
    description="every other day at 22:30",
)
print("Created schedule with id:", nightly.id)

weekly = ScheduleRecurrence(
    frequency="Week",
    interval=1,
    week_days=["Monday", "Thursday"],
    time_of_day="06:15",
    time_zone=TimeZone.UTC,
    start_time="2024-01-01T00:00:00",
)
weekly_schedule = Schedule.create(
    ws,
    name="Twice_a_week",
    pipeline_id=pub_pipeline_id,
    experiment_name="Schedule_Run",
    recurrence=weekly,
)

hourly = ScheduleRecurrence(frequency="Hour", interval=3)
hourly_schedule = Schedule.create(
    ws,
    name="Every_three_hours",
    pipeline_id=pub_pipeline_id,
    experiment_name="Schedule_Run",
    recurrence=hourly,
)

for schedule in Schedule.list(ws):
    print("schedule:", schedule.name, schedule.status, schedule.recurrence.frequency)

fetched = Schedule.get(ws, nightly.id)
fetched.disable(wait_for_provisioning=True)
print(
    "Disabled schedule {}. New status is: {}".format(
        fetched.id, Schedule.get(ws, nightly.id).status
    )
)
fetched.enable(wait_for_provisioning=True)
weekly_schedule.disable(wait_for_provisioning=True)
hourly_schedule.disable(wait_for_provisioning=True)
fetched.disable(wait_for_provisioning=True)

# what a schedule's trigger would run, submitted now
run = PublishedPipeline.get(ws, pub_pipeline_id).submit(ws, "Schedule_Run")
run.wait_for_completion(show_output=True)
