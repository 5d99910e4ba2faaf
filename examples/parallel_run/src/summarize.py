"""Count the alerts in the scores the ParallelRunStep wrote (its append_row file)."""

import argparse
import json
import os
from pathlib import Path

from mlpipe_provider.sdk import Run

parser = argparse.ArgumentParser()
parser.add_argument("--scores", required=True)
parser.add_argument("--report", required=True)
args = parser.parse_args()

rows = Path(args.scores, "scores.txt").read_text().splitlines()
alerts = [row.split()[0] for row in rows if row.endswith("ALERT")]
os.makedirs(args.report, exist_ok=True)
Path(args.report, "alerts.json").write_text(json.dumps({"rows": len(rows), "alerts": alerts}))
run = Run.get_context()
run.log("sensors", len(rows))
run.log("alerts", len(alerts))
