"""One-off set-up of a multi-service Airflow for mlpipe: the UI password and the workspace.

The docker-compose init service runs it after ``airflow db migrate`` and ``mlpipe pools sync``
(the Helm values run the workspace part in an init container); ``docs/screenshot.py`` uses the
same functions. It only needs the standard library and the files it is pointed at.

* ``--passwords-file FILE`` writes the simple auth manager's password file, ``{user: password}``,
  from ``$AIRFLOW_ADMIN_PASSWORD`` (user ``$AIRFLOW_ADMIN_USER``, default ``admin``). It is
  rewritten every time, so changing the password in ``.env`` and re-running the init takes effect.
* ``--workspace DIR --examples DIR`` makes ``DIR`` the workers' mlpipe workspace
  (``$MLPIPE_WORKSPACE``): copies the example workspace's ``config.json`` and registered modules
  into it when it has no config yet (an existing config is never overwritten), and writes the
  input data of the ``seed`` and ``prep_train_evaluate`` examples into its default datastore when
  that is a local folder and the data is not there yet.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def write_passwords_file(path: Path, user: str, password: str) -> None:
    """Set ``user``'s password in the simple auth manager's JSON file, keeping other users."""
    if not password:
        raise SystemExit("AIRFLOW_ADMIN_PASSWORD is empty: set it in .env (see .env.example)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        passwords = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(passwords, dict):
            passwords = {}
    except (OSError, ValueError):
        passwords = {}
    passwords[user] = password
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)  # the api-server runs as the same user; nobody else reads it
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(passwords) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    print(f"airflow_init: password of UI user {user!r} set in {path}")


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"mlpipe_example_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_datastore_root(workspace: Path) -> Path | None:
    """The local folder of the workspace's default datastore, or None when it is remote."""
    config = json.loads((workspace / "config.json").read_text(encoding="utf-8"))
    name = config.get("default_datastore", "workspaceblobstore")
    url = config.get("datastores", {}).get(name, {}).get("url")
    if not url:
        return None
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url:
        return None
    root = Path(url)
    return root if root.is_absolute() else workspace / root


def seed_example_data(workspace: Path, examples: Path) -> list[Path]:
    """Write the inputs the ``seed`` and ``prep_train_evaluate`` DAGs read, if missing."""
    root = default_datastore_root(workspace)
    if root is None:
        print("airflow_init: the default datastore is not a local folder; not seeding example data")
        return []
    written = []
    iris = root / "iris" / "iris.csv"
    make_iris = examples / "prep_train_evaluate" / "make_data.py"
    if make_iris.is_file() and not iris.exists():
        _load_module(make_iris).write_iris(str(iris))
        written.append(iris)
    news = root / "20newsgroups" / "20news.pkl"
    make_news = examples / "seed" / "make_data.py"
    if make_news.is_file() and not news.exists():
        _load_module(make_news).write_dataset(news)
        written.append(news)
    for path in written:
        print(f"airflow_init: wrote example input {path}")
    return written


def init_workspace(workspace: Path, examples: Path) -> Path:
    """Make ``workspace`` a usable mlpipe workspace, starting from ``examples/.mlpipe``."""
    workspace = Path(workspace)
    source = Path(examples) / ".mlpipe"
    workspace.mkdir(parents=True, exist_ok=True)
    config = workspace / "config.json"
    if not config.exists():
        shutil.copyfile(source / "config.json", config)
        print(f"airflow_init: workspace {workspace} created from {source / 'config.json'}")
    else:
        print(f"airflow_init: workspace {workspace} already has a config.json; kept")
    if (source / "modules").is_dir():
        shutil.copytree(source / "modules", workspace / "modules", dirs_exist_ok=True)
    seed_example_data(workspace, Path(examples))
    return workspace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passwords-file", type=Path)
    parser.add_argument("--workspace", type=Path, default=os.environ.get("MLPIPE_WORKSPACE"))
    parser.add_argument("--examples", type=Path)
    args = parser.parse_args(argv)
    if args.passwords_file:
        write_passwords_file(
            args.passwords_file,
            os.environ.get("AIRFLOW_ADMIN_USER") or "admin",
            os.environ.get("AIRFLOW_ADMIN_PASSWORD", ""),
        )
    if args.examples:
        if not args.workspace:
            parser.error("--examples needs --workspace (or $MLPIPE_WORKSPACE)")
        init_workspace(args.workspace, args.examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
