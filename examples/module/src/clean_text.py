"""Module ``clean_text``: normalise a text file (case, whitespace) and count its words.

Published as a module version from this folder; a pipeline runs the published snapshot, so edits
here take effect only when published as a new version.
"""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--raw", required=True)
parser.add_argument("--cleaned", required=True)
args = parser.parse_args()

lowercase = os.environ.get("AML_PARAMETER_lowercase", "True") == "True"  # noqa: SIM112 - v1 name
with open(args.raw, encoding="utf-8") as handle:
    lines = [" ".join(line.split()) for line in handle]
lines = [line.lower() if lowercase else line for line in lines if line]

os.makedirs(args.cleaned, exist_ok=True)
with open(os.path.join(args.cleaned, "text.txt"), "w", encoding="utf-8") as handle:
    handle.write("\n".join(lines) + "\n")
words = sum(len(line.split()) for line in lines)
with open(os.path.join(args.cleaned, "summary.json"), "w", encoding="utf-8") as handle:
    json.dump({"lines": len(lines), "words": words}, handle)
print(f"cleaned {len(lines)} lines, {words} words")
