"""The ``mlpipe`` command: compile, validate, migrate, and the demo.

Each subcommand lives in its own module; this file only wires up argparse and turns mlpipe's
errors into a one-paragraph message and exit code 1 (or 2 for usage), never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import MlpipeError


def _cmd_compile(args: argparse.Namespace) -> int:
    from compiler.compile import compile_pipeline
    from compiler.loader import load_pipelines

    if args.dag_id and len(args.pipelines) > 1:
        raise MlpipeError("--dag-id needs exactly one pipeline file")
    # Compile everything before writing anything: one bad pipeline leaves the DAG folder untouched.
    results = []
    origins: dict[str, str] = {}
    for target in args.pipelines:
        for found in load_pipelines(target, dag_id=args.dag_id):
            compiled = compile_pipeline(
                found.pipeline,
                found.dag_id,
                args.output,
                origin=found.origin,
                schedule_on_assets=args.schedule_on_asset,
            )
            if compiled.dag_id in origins:
                raise MlpipeError(
                    f"{origins[compiled.dag_id]} and {found.origin} both compile to DAG {compiled.dag_id!r}; "
                    "rename one of the pipelines (or its file)"
                )
            origins[compiled.dag_id] = found.origin
            results.append((found, compiled))
    stale: list[str] = []
    for found, compiled in results:
        if args.check:
            if not compiled.is_current():
                stale.append(f"{compiled.path} (from {found.origin})")
            continue
        changed = compiled.write()
        print(
            f"{'wrote' if changed else 'unchanged'} {compiled.path} (DAG {compiled.dag_id!r}, from {found.origin})"
        )
    if stale:
        print(
            "stale DAG files (run `mlpipe compile` without --check):\n  " + "\n  ".join(stale),
            file=sys.stderr,
        )
        return 1
    if args.check:
        print("all DAG files are current")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from compiler.loader import load_pipelines

    bad = 0
    for target in args.pipelines:
        for found in load_pipelines(target):
            problems = found.pipeline.validate()
            if problems:
                bad += 1
                print(f"{found.origin}: {len(problems)} problem(s)")
                for problem in problems:
                    print(f"  - {problem}")
            else:
                print(f"{found.origin}: ok ({len(found.pipeline.steps)} steps)")
    return 1 if bad else 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli.migrate import migrate_paths

    return migrate_paths([Path(p) for p in args.paths], dry_run=args.dry_run)


def _cmd_store(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import store_cmd

    if args.store_command == "ls":
        return store_cmd.list_entries(args.workspace)
    return store_cmd.collect_garbage(args.workspace, args.older_than, dry_run=args.dry_run)


def _cmd_env(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import env_cmd

    if args.env_command == "ls":
        return env_cmd.list_envs(args.workspace)
    return env_cmd.collect_garbage(args.workspace, args.older_than, dry_run=args.dry_run)


def _cmd_modules(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import modules_cmd

    if args.modules_command == "install-builtins":
        return modules_cmd.install_builtins(args.workspace, args.names)
    return modules_cmd.list_modules(args.workspace)


def _cmd_pools(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli.pools_cmd import sync_pools

    return sync_pools(args.dags, dry_run=args.dry_run)


def _cmd_server(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import server_cmd

    if args.server_command == "up":
        return server_cmd.server_up(
            args.workspace,
            port=args.port,
            db=args.db,
            parallelism=args.parallelism,
            users=args.user,
        )
    if args.server_command == "down":
        return server_cmd.server_down(args.workspace, forget=args.forget)
    return server_cmd.server_status(args.workspace)


def _cmd_deploy(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import deploy_cmd

    return deploy_cmd.deploy(args.pipelines, dag_id=args.dag_id, timeout_s=args.timeout)


def _cmd_submit(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import deploy_cmd

    return deploy_cmd.submit(
        args.target,
        args.param,
        workspace=args.workspace,
        regenerate_outputs=args.regenerate_outputs,
        wait=not args.no_wait,
        timeout_s=args.timeout,
    )


def _cmd_runs(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli import deploy_cmd

    return deploy_cmd.list_runs(args.dag_id, workspace=args.workspace, limit=args.limit)


def _cmd_demo(args: argparse.Namespace) -> int:
    from mlpipe_provider.cli.demo import run_demo

    return run_demo(
        Path(args.workdir) if args.workdir else None,
        Path(args.project) if args.project else None,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpipe", description="Azure ML v1 style pipelines on Apache Airflow"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile pipeline files to Airflow DAG files")
    p.add_argument("pipelines", nargs="+", metavar="PIPELINE.py[:NAME]")
    p.add_argument("-o", "--output", default="dags", help="DAG folder (default: dags)")
    p.add_argument("--dag-id", help="DAG id for a file holding exactly one pipeline")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a DAG file is missing or stale; write nothing",
    )
    p.add_argument(
        "--schedule-on-asset",
        action="append",
        metavar="URI",
        help="run the DAG whenever this mlpipe asset gets an event (repeat: all of them); "
        "see docs/lineage.md",
    )
    p.set_defaults(func=_cmd_compile)

    p = sub.add_parser("validate", help="report every problem in pipeline files, without writing")
    p.add_argument("pipelines", nargs="+", metavar="PIPELINE.py[:NAME]")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "migrate",
        help="rewrite azureml imports to mlpipe_provider.sdk and report what mlpipe lacks",
    )
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--dry-run", action="store_true", help="show what would change; write nothing")
    p.set_defaults(func=_cmd_migrate)

    p = sub.add_parser(
        "demo", help="compile the examples and run the seed pipeline twice on an embedded Airflow"
    )
    p.add_argument(
        "--workdir", help="where the demo workspace lives (default: build/demo, recreated)"
    )
    p.add_argument(
        "--project",
        help="the mlpipe checkout holding examples/ and dags/ (default: the current directory)",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("modules", help="the workspace's registered modules")
    modules_sub = p.add_subparsers(dest="modules_command", required=True)
    install = modules_sub.add_parser(
        "install-builtins",
        help="publish the built-in modules (Split Data, Train Model, ...); idempotent",
    )
    install.add_argument("names", nargs="*", help="only these built-ins (default: all)")
    ls = modules_sub.add_parser("ls", help="list modules: default version, versions, category")
    for command in (install, ls):
        command.add_argument(
            "--workspace", help="a folder inside the workspace project; default: the cwd"
        )
    p.set_defaults(func=_cmd_modules)

    p = sub.add_parser("pools", help="Airflow pools for GPU compute targets")
    pools_sub = p.add_subparsers(dest="pools_command", required=True)
    sync = pools_sub.add_parser(
        "sync", help="create/resize the pools that the compiled DAGs ask for"
    )
    sync.add_argument("dags", nargs="?", default="dags", help="DAG folder (default: dags)")
    sync.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=_cmd_pools)

    p = sub.add_parser("store", help="list or prune the reuse store")
    store_sub = p.add_subparsers(dest="store_command", required=True)
    ls = store_sub.add_parser(
        "ls", help="list entries: step, fingerprint, size, age, producing run"
    )
    gc = store_sub.add_parser("gc", help="delete entries older than DAYS (never leased ones)")
    gc.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    gc.add_argument("--dry-run", action="store_true")
    for command in (ls, gc):
        command.add_argument(
            "--workspace", help="workspace folder (.mlpipe); default: found from the cwd"
        )
    p.set_defaults(func=_cmd_store)

    p = sub.add_parser("env", help="list or prune the step environments (virtualenvs)")
    env_sub = p.add_subparsers(dest="env_command", required=True)
    ls = env_sub.add_parser("ls", help="list environments: hash, packages, size, last used")
    gc = env_sub.add_parser("gc", help="delete environments unused for DAYS (never in-use ones)")
    gc.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    gc.add_argument("--dry-run", action="store_true")
    for command in (ls, gc):
        command.add_argument(
            "--workspace", help="workspace folder (.mlpipe); default: found from the cwd"
        )
    p.set_defaults(func=_cmd_env)

    workspace_help = "workspace folder (.mlpipe); default: found from the cwd"
    p = sub.add_parser("server", help="a local Airflow server for this workspace")
    server_sub = p.add_subparsers(dest="server_command", required=True)
    up = server_sub.add_parser("up", help="start it in the background and wait until healthy")
    up.add_argument("--port", type=int, help="API/UI port on 127.0.0.1 (default 8080)")
    up.add_argument("--db", help="metadata DB URL, e.g. postgresql://... (default: SQLite)")
    up.add_argument("--parallelism", type=int, help="task slots of the LocalExecutor (default 4)")
    up.add_argument(
        "--user",
        action="append",
        metavar="NAME:ROLE",
        help="another login (ROLE: viewer, user, op or admin), password generated into the "
        "server's password file; repeatable, kept for later `server up`s",
    )
    down = server_sub.add_parser("down", help="stop it (the whole process group)")
    down.add_argument(
        "--forget",
        action="store_true",
        help="also remove it from the workspace config (submits run embedded again)",
    )
    status = server_sub.add_parser("status", help="print the server's health")
    for command in (up, down, status):
        command.add_argument("--workspace", help=workspace_help)
    p.set_defaults(func=_cmd_server)

    p = sub.add_parser(
        "deploy", help="compile into the workspace's Airflow server and wait until it is parsed"
    )
    p.add_argument("pipelines", nargs="+", metavar="PIPELINE.py[:NAME]")
    p.add_argument("--dag-id", help="DAG id for a file holding exactly one pipeline")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for parsing")
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser("submit", help="run a pipeline or deployed DAG on the Airflow server")
    p.add_argument("target", metavar="PIPELINE.py[:NAME] | DAG_ID")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a pipeline parameter (checked against the DAG's params); repeatable",
    )
    p.add_argument("--regenerate-outputs", action="store_true", help="run every step")
    p.add_argument("--no-wait", action="store_true", help="trigger and return")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to follow the run")
    p.add_argument("--workspace", help=workspace_help + " (for a DAG id)")
    p.set_defaults(func=_cmd_submit)

    p = sub.add_parser("runs", help="list a DAG's runs on the Airflow server")
    p.add_argument("dag_id", metavar="DAG_ID")
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("--workspace", help=workspace_help)
    p.set_defaults(func=_cmd_runs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the default display afterwards
        shown = warnings.showwarning
        warnings.showwarning = functools.partial(_show_warning, args.command, shown)
        try:
            return args.func(args)
        except MlpipeError as exc:
            print(f"mlpipe {args.command}: {exc}", file=sys.stderr)
            return 1


def _show_warning(command: str, fallback: Any, message: Any, category: type, *rest: Any) -> None:
    """A compile warning (a v1 ask bent to run) reads like an error line, without a source line."""
    from compiler.lower import V1LenientWarning

    if issubclass(category, V1LenientWarning):
        print(f"mlpipe {command}: warning: {message}", file=sys.stderr)
    else:
        fallback(message, category, *rest)


if __name__ == "__main__":
    sys.exit(main())
