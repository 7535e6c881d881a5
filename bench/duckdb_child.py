"""Runs one DuckDB query in a process of its own, so that its peak memory can be measured alone.

Invoked by common.py as `python duckdb_child.py THREADS` with the SQL on stdin. The connection
is made and configured before the clock starts, so the time is the query's alone (no interpreter
start-up or import, unlike usagelake's, which includes the binary's start). Writes a pickle of
(seconds, rows, resident bytes before the query) to stdout.
"""

import pickle
import sys
import time

import duckdb


def resident_bytes():
    """VmRSS of this process: what Python and DuckDB hold before the query, to read the peak against."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main():
    threads = int(sys.argv[1])
    sql = sys.stdin.read()
    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    # Dates of a TIMESTAMPTZ follow the session time zone; the functions' default is UTC.
    connection.execute("SET TimeZone = 'UTC'")
    at_rest = resident_bytes()
    started = time.perf_counter()
    rows = connection.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    pickle.dump((seconds, rows, at_rest), sys.stdout.buffer)


if __name__ == "__main__":
    main()
