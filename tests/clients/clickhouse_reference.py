"""ClickHouse itself, in-process through chdb, as the reference of the differential tests
(tests/integration/clickhouse_differential.rs).

Reads a JSON object on standard input: {"parquet": path, "queries": [sql, ...]}, where the path
may be a glob of several files and each query reads the events as `{events}` (replaced by
ClickHouse's `file(path, Parquet)`). Prints one JSON
array with, for each query, its rows, each a JSON array of its values: numbers, strings, null,
arrays. Timestamps are the query's to turn into numbers (toUnixTimestamp), so that both engines'
answers compare as plain values. An error is printed as {"error": text} in the query's place.
"""

import json
import sys

import chdb

# The funnel functions are experimental in ClickHouse: sequenceNextNode needs this setting
# (formerly allow_experimental_funnel_functions). 64-bit integers unquoted, so that they read as
# numbers.
SETTINGS = {
    "enable_funnel_functions": 1,
    "output_format_json_quote_64bit_integers": 0,
}


def run(session, sql):
    try:
        result = session.query(sql, "JSONCompactEachRow")
    except Exception as error:  # chdb raises RuntimeError with ClickHouse's message
        return {"error": str(error)}
    return [json.loads(line) for line in result.data().splitlines() if line]


def main():
    request = json.load(sys.stdin)
    table = "file('{}', Parquet)".format(request["parquet"].replace("'", "\\'"))
    settings = " SETTINGS " + ", ".join(f"{k} = {v}" for k, v in SETTINGS.items())
    session = chdb.session.Session()
    answers = [run(session, sql.replace("{events}", table) + settings) for sql in request["queries"]]
    print(json.dumps({"version": run(session, "SELECT version()")[0][0], "answers": answers}))


if __name__ == "__main__":
    main()
