"""Built-in module "Two-Class Decision Forest": an untrained model for Train Model (see _learners.py)."""

from _learners import write_untrained_model

write_untrained_model("Two-Class Decision Forest")
