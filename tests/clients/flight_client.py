"""A thin Flight SQL client for the integration tests: real PyPI clients, driven step by step.

The Rust tests (tests/integration/flight_clients.rs) start the real server, run this script with
the venv's Python, and check what it prints against the same questions answered by the usagelake
command line. The script only reports what the clients saw, one JSON object per step on stdout;
it decides nothing.

    flight_client.py URI [--user U --password P] [--tls-root FILE] < steps.json

Steps are a JSON list of objects with an "op":
    query            {"sql", "params"?}: rows (dates and times as ISO strings), column types
    get_objects      catalogs, their schemas and tables with column names (adbc_get_objects)
    table_schema     {"table"}: column names and Arrow types (adbc_get_table_schema)
    table_types      adbc_get_table_types
    info             adbc_get_info
    stream_count     {"sql"}: rows and batches read one batch at a time, never the whole result
    read_one_close   {"sql"}: read the first batch, then close the cursor and connection
    concurrent       {"sql", "clients", "seconds"}: queries per client thread, errors seen
    sqlalchemy       SQLAlchemy reflection through flightsql-dbapi, and one query {"sql"}
An error in a step is reported as {"error": "..."} and the next step runs.
"""

import argparse
import datetime
import decimal
import json
import sys
import threading
import time
import warnings

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql

warnings.simplefilter("ignore")


def plain(value):
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def parameter(value):
    """JSON parameters: {"date": "2024-12-01"} is a DATE, other values are themselves."""
    if isinstance(value, dict) and "date" in value:
        return datetime.date.fromisoformat(value["date"])
    return value


class Client:
    def __init__(self, args):
        self.args = args

    def connect(self):
        kwargs = {}
        if self.args.user is not None:
            kwargs["username"] = self.args.user
            kwargs["password"] = self.args.password
        if self.args.tls_root:
            with open(self.args.tls_root, "rb") as f:
                kwargs[adbc_driver_flightsql.DatabaseOptions.TLS_ROOT_CERTS.value] = f.read().decode()
        return flightsql.connect(self.args.uri, db_kwargs=kwargs, autocommit=True)

    def query(self, step, conn):
        cur = conn.cursor()
        params = [parameter(p) for p in step.get("params", [])]
        cur.execute(step["sql"], parameters=params if params else None)
        table = cur.fetch_arrow_table()
        return {
            "rows": [plain(list(row.values())) for row in table.to_pylist()],
            "types": [str(field.type) for field in table.schema],
        }

    def get_objects(self, step, conn):
        objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
        return {
            "catalogs": {
                c["catalog_name"]: {
                    s["db_schema_name"]: {
                        t["table_name"]: [col["column_name"] for col in (t["table_columns"] or [])]
                        for t in (s["db_schema_tables"] or [])
                    }
                    for s in (c["catalog_db_schemas"] or [])
                }
                for c in objects
            }
        }

    def table_schema(self, step, conn):
        schema = conn.adbc_get_table_schema(step["table"])
        return {"columns": [[f.name, str(f.type)] for f in schema]}

    def table_types(self, step, conn):
        return {"table_types": conn.adbc_get_table_types()}

    def info(self, step, conn):
        return {"info": plain(conn.adbc_get_info())}

    def stream_count(self, step, conn):
        cur = conn.cursor()
        cur.execute(step["sql"])
        reader = cur.fetch_record_batch()
        rows = batches = largest = 0
        for batch in reader:
            rows += batch.num_rows
            batches += 1
            largest = max(largest, batch.num_rows)
        return {"rows": rows, "batches": batches, "largest_batch": largest}

    def read_one_close(self, step, conn):
        cur = conn.cursor()
        cur.execute(step["sql"])
        reader = cur.fetch_record_batch()
        first = reader.read_next_batch()
        reader.close()
        cur.close()
        return {"first_batch_rows": first.num_rows}

    def concurrent(self, step, _conn):
        deadline = time.monotonic() + step["seconds"]
        done = [0] * step["clients"]
        errors = []

        def client(index):
            try:
                conn = self.connect()
                cur = conn.cursor()
                while time.monotonic() < deadline:
                    cur.execute(step["sql"])
                    cur.fetchall()
                    done[index] += 1
                conn.close()
            except Exception as e:  # reported, and counted by the test
                errors.append(str(e).splitlines()[0])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(step["clients"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {"queries": done, "errors": errors}

    def sqlalchemy(self, step, _conn):
        import flightsql.sqlalchemy  # noqa: F401 (registers the dialect)
        from sqlalchemy import create_engine, inspect, text

        host_port = self.args.uri.split("://", 1)[1]
        credentials = f"{self.args.user}:{self.args.password}@" if self.args.user else ""
        engine = create_engine(f"datafusion+flightsql://{credentials}{host_port}?insecure=True")
        inspector = inspect(engine)
        tables = sorted(inspector.get_table_names())
        with engine.connect() as connection:
            rows = [plain(list(r)) for r in connection.execute(text(step["sql"])).fetchall()]
        return {
            "schemas": inspector.get_schema_names(),
            "tables": tables,
            "columns": {t: [[c["name"], str(c["type"])] for c in inspector.get_columns(t)] for t in tables},
            "rows": rows,
        }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("uri")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tls-root")
    args = parser.parse_args()
    client = Client(args)
    steps = json.load(sys.stdin)
    conn = None
    for step in steps:
        try:
            if conn is None and step["op"] not in ("concurrent", "sqlalchemy"):
                conn = client.connect()
            result = getattr(client, step["op"])(step, conn)
            if step["op"] == "read_one_close":
                conn.close()
                conn = None
        except Exception as e:
            result = {"error": str(e).splitlines()[0]}
        print(json.dumps(result), flush=True)
    if conn is not None:
        conn.close()


if __name__ == "__main__":
    main()
