"""A Flight SQL client in its own process, as a partner's would be: ADBC's
Flight SQL driver over mTLS, answers read into pandas.

``python flight_client.py SPEC.json`` runs each step of the spec and prints
one JSON object: per step its rows (or tables) or its error. Run in a
separate process because ADBC's driver carries its own gRPC stack, which
must never share a process with grpcio (the tests').
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
from adbc_driver_flightsql import DatabaseOptions

HEADER = DatabaseOptions.RPC_CALL_HEADER_PREFIX.value


def connect(spec: dict[str, Any]) -> flight_sql.Connection:
    options = {
        DatabaseOptions.TLS_ROOT_CERTS.value: Path(spec["ca"]).read_text(),
        DatabaseOptions.MTLS_CERT_CHAIN.value: Path(spec["cert"]).read_text(),
        DatabaseOptions.MTLS_PRIVATE_KEY.value: Path(spec["key"]).read_text(),
        **{HEADER + name: value for name, value in spec["headers"].items()},
    }
    return flight_sql.connect(f"grpc+tls://{spec['address']}", db_kwargs=options)


def run(connection: flight_sql.Connection, step: dict[str, Any]) -> dict[str, Any]:
    try:
        if step["do"] == "tables":
            objects = connection.adbc_get_objects(depth="tables").read_all().to_pylist()
            names = [
                t["table_name"]
                for catalog in objects
                for schema in catalog["catalog_db_schemas"] or []
                for t in schema["db_schema_tables"] or []
            ]
            return {"tables": sorted(names)}
        if step["do"] == "table_schema":
            schema = connection.adbc_get_table_schema(step["table"])
            return {"columns": schema.names}
        if step["do"] == "statement":  # CommandStatementQuery: no prepare
            statement = adbc_driver_manager.AdbcStatement(connection.adbc_connection)
            try:
                statement.set_sql_query(step["sql"])
                stream, _ = statement.execute_query()
                import pyarrow as pa

                frame = pa.RecordBatchReader._import_from_c(stream.address).read_pandas()
            finally:
                statement.close()
        else:  # the DB-API: a prepared statement, with parameters if any
            with connection.cursor() as cursor:
                cursor.execute(step["sql"], step.get("parameters"))
                frame = cursor.fetch_df()
        return {
            "columns": list(frame.columns),
            "rows": json.loads(frame.to_json(orient="values", date_format="iso")),
        }
    except adbc_driver_manager.Error as exc:
        return {"error": str(exc), "status": type(exc).__name__}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    with connect(spec) as connection:
        results = [run(connection, step) for step in spec["steps"]]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
