from azureml.core import Run

print("Hello from a scheduled pipeline")
Run.get_context().log("hello", 1)
