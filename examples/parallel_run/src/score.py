"""Entry script of the ``score-readings`` ParallelRunStep: v1's init()/run(mini_batch) contract."""

import argparse
import os
from pathlib import Path

from mlpipe_provider.sdk import EntryScript

alert_level = None
units = None


def init():
    """Once per worker process: parse the step's arguments and load the "model"."""
    global alert_level, units
    parser = argparse.ArgumentParser()
    parser.add_argument("--alert-level", type=float, required=True)
    args, _ = parser.parse_known_args()
    alert_level = args.alert_level
    units = os.environ.get("SCORE_UNITS", "?")
    EntryScript().logger.info("scoring with alert level %s %s", alert_level, units)


def run(mini_batch):
    """Score each file of the mini-batch; one result row per file processed."""
    rows = []
    for path in mini_batch:
        lines = Path(path).read_text().split()
        sensor, values = lines[0], [float(v) for v in lines[1:]]
        peak = max(values)
        status = "ALERT" if peak >= alert_level else "ok"
        rows.append(f"{sensor} peak={peak:g}{units[0].upper()} {status}")
    return rows
