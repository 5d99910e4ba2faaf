"""Write ``.env`` for docker-compose.yaml from ``.env.example``, with fresh random secrets.

    python3 deploy/make_env.py [--output .env] [--force]

Every empty ``NAME=`` line of the example gets a random value (``AIRFLOW_FERNET_KEY`` a Fernet
key); comments and optional settings are kept as they are. An existing file is never overwritten
without ``--force``: its secrets encrypt the database (Fernet key) and open the Postgres volume.
Prints the admin password once.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMPTY = re.compile(r"^([A-Z][A-Z0-9_]*)=\s*$")


def secret_for(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(32)


def render(example: str) -> tuple[str, dict[str, str]]:
    values: dict[str, str] = {}
    lines = []
    for line in example.splitlines():
        match = EMPTY.match(line)
        if match:
            values[match.group(1)] = secret_for(match.group(1))
            line = f"{match.group(1)}={values[match.group(1)]}"
        lines.append(line)
    return "\n".join(lines) + "\n", values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", type=Path, default=REPO / ".env.example")
    parser.add_argument("--output", type=Path, default=REPO / ".env")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; keeping it (--force replaces it)", file=sys.stderr)
        return 1
    text, values = render(args.example.read_text(encoding="utf-8"))
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {args.output} ({len(values)} secrets)")
    if "AIRFLOW_ADMIN_PASSWORD" in values:
        print(f"Airflow UI: user admin, password {values['AIRFLOW_ADMIN_PASSWORD']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
