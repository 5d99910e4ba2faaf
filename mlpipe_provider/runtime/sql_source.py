"""A ``SqlDataReference`` source: run its statement and stage the rows as one CSV file.

Reuse needs the content digest of what the transfer would copy, and for a database that is only
known by asking it: the fingerprint of a transfer from SQL runs the statement, writes the CSV to
a private temporary folder while hashing it, and uses that digest as the input's digest (the
statement itself is in the step's settings). A table that changed gives another CSV, so the
transfer runs and its downstream steps see new bytes; a change that leaves the result the same
keeps everything reused. Within one task the staged file is reused: the copy is of exactly the
bytes the fingerprint was computed from, so the recorded entry can never describe other data.

The CSV: UTF-8, comma-separated, a header row of the result's column names, ``\\n`` line ends,
quoting only where needed; NULL is an empty field, dates and times are ISO 8601, binary is hex.
Rows stream through in batches, so a large result is never held in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.hashing import DIGEST_PREFIX

BATCH_ROWS = 10_000


@dataclass
class StagedResult:
    """One statement's result as a local CSV file."""

    folder: Path
    path: Path
    digest: str
    size: int
    rows: int

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class _HashingSink:
    """What ``csv.writer`` writes to: the bytes go to the file and into the digest at once."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.hasher = blake3.blake3()
        self.size = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.hasher.update(data)
        self.handle.write(data)
        self.size += len(data)


def cell(value: Any) -> str:
    """One value as CSV text, the same for the same value on every run and every driver."""
    if value is None:
        return ""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    return str(value)


def _quoted_name(preparer: Any, name: str) -> str:
    """``schema.table`` with each part quoted as the dialect requires (a name with capitals or
    spaces is then matched exactly); brackets or quotes written around a part are removed first."""
    parts = []
    for part in name.split("."):
        part = part.strip()
        if len(part) >= 2 and (part[0], part[-1]) in (("[", "]"), ('"', '"'), ("`", "`")):
            part = part[1:-1]
        if not part:
            raise UserErrorException(f"{name!r} is not a valid table or procedure name")
        parts.append(preparer.quote(part))
    return ".".join(parts)


_CONVERT = {
    "String": str,
    "Int": int,
    "Decimal": lambda v: decimal.Decimal(str(v)),
    "Guid": lambda v: str(uuid.UUID(str(v))),
    "Boolean": lambda v: v if isinstance(v, bool) else str(v).strip().lower() in ("true", "1"),
    "Date": lambda v: dt.datetime.fromisoformat(str(v)),
}


def statement(dialect: Any, sql: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The SQL to run and its bound parameters (None: pass the text to the driver untouched, so a
    user's query is never parsed for ``:name`` placeholders or ``%`` signs)."""
    preparer = dialect.identifier_preparer
    if sql.get("query"):
        return sql["query"], None
    if sql.get("table"):
        return f"SELECT * FROM {_quoted_name(preparer, sql['table'])}", None
    procedure = _quoted_name(preparer, sql["procedure"])
    params = sql.get("params") or []
    values = {
        f"p{i}": _CONVERT[p["type"]](p["value"]) if p["value"] is not None else None
        for i, p in enumerate(params)
    }
    names = [preparer.quote(p["name"]) for p in params]
    if dialect.name == "postgresql":  # a set-returning function, arguments by name
        args = ", ".join(f"{n} => :p{i}" for i, n in enumerate(names))
        return f"SELECT * FROM {procedure}({args})", values
    if dialect.name == "mssql":
        args = ", ".join(f"@{p['name']} = :p{i}" for i, p in enumerate(params))
        return f"EXEC {procedure} {args}".rstrip(), values
    args = ", ".join(f":p{i}" for i in range(len(params)))  # MySQL: CALL, by position
    return f"CALL {procedure}({args})", values


def run_to_csv(engine: Any, sql: dict[str, Any], target: Path) -> tuple[str, int, int]:
    """Run the statement and write its rows to ``target``; returns (digest, bytes, rows)."""
    from sqlalchemy import text

    with engine.connect() as connection:
        if engine.dialect.name in ("postgresql", "mysql"):
            connection = connection.execution_options(stream_results=True)
        sql_text, params = statement(engine.dialect, sql)
        if params is None:
            result = connection.exec_driver_sql(sql_text)
        else:
            result = connection.execute(text(sql_text), params)
        rows = 0
        with open(target, "wb") as handle:
            sink = _HashingSink(handle)
            writer = csv.writer(sink, lineterminator="\n")
            if not result.returns_rows:
                raise UserErrorException("the statement returned no result set (no columns)")
            writer.writerow(list(result.keys()))
            while batch := result.fetchmany(BATCH_ROWS):
                writer.writerows([cell(v) for v in row] for row in batch)
                rows += len(batch)
            handle.flush()
            os.fsync(handle.fileno())
        result.close()
    return DIGEST_PREFIX + sink.hasher.hexdigest(), sink.size, rows


def staged_result(reuse: Any, spec: dict[str, Any]) -> StagedResult:
    """The CSV of input ``spec`` for this task, run once and kept until ``reuse.close()``."""
    from mlpipe_provider.sql_datastores import describe_error, open_engine

    results: dict[str, StagedResult] = reuse.sql_results
    if spec["name"] in results:
        return results[spec["name"]]
    step = reuse.op.step_name
    name = spec["datastore"]
    entry = reuse.ws.config.datastores.get(name)
    if entry is None:
        raise UserErrorException(
            f"step {step!r}, field 'source_data_reference': unknown datastore {name!r}"
        )
    folder = Path(tempfile.mkdtemp(prefix="mlpipe-sql-"))
    target = folder / f"{spec['name']}.csv"
    try:
        engine = open_engine(reuse.ws.directory, name, entry)
        try:
            digest, size, rows = run_to_csv(engine, spec["sql"], target)
        finally:
            engine.dispose()
    except UserErrorException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise UserErrorException(
            f"step {step!r}, field 'source_data_reference' (SqlDataReference "
            f"{spec['name']!r} on datastore {name!r}): {exc}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the driver's message, minus the password
        shutil.rmtree(folder, ignore_errors=True)
        raise UserErrorException(
            f"step {step!r}, field 'source_data_reference' (SqlDataReference "
            f"{spec['name']!r} on datastore {name!r}): the query failed: "
            f"{describe_error(exc, reuse.ws.directory, name, entry)}"
        ) from None
    staged = StagedResult(folder, target, digest, size, rows)
    results[spec["name"]] = staged
    log = getattr(reuse.op, "log", None)
    if log is not None:
        log.info(
            "mlpipe: step %r: SqlDataReference %r on %r: %d row(s), %d bytes of CSV, %s",
            step,
            spec["name"],
            name,
            rows,
            size,
            digest,
        )
    return staged
