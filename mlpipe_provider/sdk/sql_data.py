"""``SqlDataReference``: v1's handle on a table, a query or a stored procedure of a SQL datastore.

As in v1 it is the source of a ``DataTransferStep``, which runs it and writes the rows as CSV to
the destination (docs/steps/data_transfer.md). It only describes; nothing connects here.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from enum import Enum
from typing import Any

from mlpipe_provider.errors import UserErrorException

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StoredProcedureParameterType(Enum):
    """v1's ``azureml.data.stored_procedure_parameter.StoredProcedureParameterType``."""

    String = "String"
    Int = "Int"
    Decimal = "Decimal"
    Guid = "Guid"
    Boolean = "Boolean"
    Date = "Date"


class StoredProcedureParameter:
    """One named argument of ``sql_stored_procedure`` (v1's ``StoredProcedureParameter``)."""

    def __init__(
        self,
        name: str,
        value: Any,
        type: StoredProcedureParameterType = StoredProcedureParameterType.String,  # noqa: A002 - v1's name
    ):
        if not isinstance(name, str) or not _NAME_RE.match(name.lstrip("@")):
            raise UserErrorException(
                f"StoredProcedureParameter name {name!r} must be an identifier"
            )
        if isinstance(type, str):
            try:
                type = StoredProcedureParameterType(type)  # noqa: A001
            except ValueError:
                known = ", ".join(t.value for t in StoredProcedureParameterType)
                raise UserErrorException(
                    f"StoredProcedureParameter {name!r}: type must be one of {known}, got {type!r}"
                ) from None
        self.name = name
        self.value = value
        self.type = type

    def _as_literal(self) -> dict[str, Any]:
        """The parameter as plain JSON for the DAG file; the runtime converts it back by type."""
        value = self.value
        if isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        elif isinstance(value, (decimal.Decimal, uuid.UUID)):
            value = str(value)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            raise UserErrorException(
                f"StoredProcedureParameter {self.name!r}: value {value!r} is not a string, number, "
                "boolean, date or UUID"
            )
        check = _CHECKS.get(self.type)
        if value is not None and check is not None:
            try:
                check(value)
            except (ValueError, TypeError, decimal.InvalidOperation):
                raise UserErrorException(
                    f"StoredProcedureParameter {self.name!r}: {value!r} is not a valid "
                    f"{self.type.value}"
                ) from None
        return {"name": self.name.lstrip("@"), "value": value, "type": self.type.value}

    def __repr__(self) -> str:
        return f"StoredProcedureParameter(name={self.name!r}, type={self.type.value})"


# what the runtime will convert each typed value with, checked when compiling (runtime/sql_source)
_CHECKS = {
    StoredProcedureParameterType.Int: int,
    StoredProcedureParameterType.Decimal: lambda v: decimal.Decimal(str(v)),
    StoredProcedureParameterType.Guid: lambda v: uuid.UUID(str(v)),
    StoredProcedureParameterType.Date: lambda v: dt.datetime.fromisoformat(str(v)),
}


class SqlDataReference:
    """A table, query or stored procedure of a SQL datastore (v1's ``SqlDataReference``).

    Exactly one of ``sql_table``, ``sql_query`` and ``sql_stored_procedure`` is given; the
    datastore must have been registered with ``register_azure_sql_database``,
    ``register_azure_postgre_sql`` or ``register_azure_my_sql`` (checked when compiling).
    """

    def __init__(
        self,
        datastore: Any,
        data_reference_name: str | None = None,
        sql_table: str | None = None,
        sql_query: str | None = None,
        sql_stored_procedure: str | None = None,
        sql_stored_procedure_params: list[StoredProcedureParameter] | None = None,
    ):
        from mlpipe_provider.sdk.data import _datastore_name

        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        name = data_reference_name or self.datastore_name or "sql_data_reference"
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise UserErrorException(
                f"SqlDataReference data_reference_name {name!r} must start with a letter or '_' "
                "and contain only letters, digits and '_'"
            )
        self.data_reference_name = name
        given = [
            field
            for field, value in (
                ("sql_table", sql_table),
                ("sql_query", sql_query),
                ("sql_stored_procedure", sql_stored_procedure),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise UserErrorException(
                f"SqlDataReference {name!r}: give exactly one of sql_table, sql_query and "
                f"sql_stored_procedure (got {', '.join(given) or 'none'})"
            )
        for field in given:
            value = locals()[field]
            if not isinstance(value, str) or not value.strip():
                raise UserErrorException(
                    f"SqlDataReference {name!r}: {field} must be a non-empty string"
                )
        params = list(sql_stored_procedure_params or [])
        if params and sql_stored_procedure is None:
            raise UserErrorException(
                f"SqlDataReference {name!r}: sql_stored_procedure_params needs sql_stored_procedure"
            )
        for index, param in enumerate(params):
            if not isinstance(param, StoredProcedureParameter):
                raise UserErrorException(
                    f"SqlDataReference {name!r}: sql_stored_procedure_params[{index}] must be a "
                    f"StoredProcedureParameter, got {type(param).__name__}"
                )
        self.sql_table = sql_table
        self.sql_query = sql_query
        self.sql_stored_procedure = sql_stored_procedure
        self.sql_stored_procedure_params = params

    def statement(self) -> dict[str, Any]:
        """What the transfer runs, as plain JSON (literals in the DAG file, part of the step's
        fingerprint)."""
        return {
            "table": self.sql_table,
            "query": self.sql_query,
            "procedure": self.sql_stored_procedure,
            "params": [p._as_literal() for p in self.sql_stored_procedure_params],
        }

    def __repr__(self) -> str:
        return (
            f"SqlDataReference(datastore={self.datastore_name!r}, "
            f"data_reference_name={self.data_reference_name!r})"
        )


__all__ = ["SqlDataReference", "StoredProcedureParameter", "StoredProcedureParameterType"]
