"""Built-in module "Apply SQL Transformation": a SQLite query over the connected datasets.

The datasets on ports t1, t2 and t3 are tables ``t1``, ``t2`` and ``t3`` of an in-memory SQLite
database, as the designer names them. The script's statements (separated by semicolons) run in
order; the last one must return rows, and they are the result.
"""

import sqlite3

import pandas as pd
from _catalogue import sql_statements
from _common import fail, get_run, read_table, start, write_table

MODULE = "Apply SQL Transformation"
FIELD = "params['sql_query_script']"
args, params = start(MODULE)
database = sqlite3.connect(":memory:")
for table in ("t1", "t2", "t3"):
    path = getattr(args, table)
    if path:
        read_table(path).to_sql(table, database, index=False)
statements = sql_statements(params["sql_query_script"])
try:
    for statement in statements[:-1]:
        database.execute(statement)
    cursor = database.execute(statements[-1])
except sqlite3.Error as exc:
    fail(MODULE, FIELD, f"SQLite: {exc}")
if cursor.description is None:
    fail(MODULE, FIELD, "the last statement returns no rows: end the script with a SELECT")
result = pd.DataFrame(cursor.fetchall(), columns=[d[0] for d in cursor.description])
write_table(result, args.result_dataset)
get_run().log("Rows", len(result))
