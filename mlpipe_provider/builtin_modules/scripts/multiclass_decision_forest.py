"""Built-in module "Multiclass Decision Forest": an untrained model for Train Model (see _learners.py)."""

from _learners import write_untrained_model

write_untrained_model("Multiclass Decision Forest")
