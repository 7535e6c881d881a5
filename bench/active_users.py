"""active_users on a generated lake, side by side with DuckDB's fastest plain SQL and the bare scan.

Each contender computes DAU, WAU and MAU for every day of the lake and hands back every row; the
best of --repeat runs counts. usagelake runs as the real binary (its start-up and lake
registration included); DuckDB runs in-process with the same number of threads, its connection
made before the clock starts. The two results are compared row by row before any time is shown.
"""

import argparse
import csv
import io
import os
import resource
import subprocess
import time

import duckdb

USAGELAKE_SQL = "SELECT day, dau, wau, mau FROM active_users('events') ORDER BY day"
BARE_SCAN_SQL = "SELECT sum(user_id), sum(CAST(ts AS BIGINT)) FROM events"

# Linear in the distinct (user, day) pairs: each active day opens windows that end at the next
# active day or after 1, 7 or 30 days, whichever is first; a running sum of the openings and
# closings gives the counts. The self-join formulation (days x 30) is many times slower.
DUCKDB_SQL = """
WITH d AS (SELECT DISTINCT user_id, CAST(ts AS DATE) AS day FROM read_parquet('{events}')),
s AS (SELECT day, lead(day) OVER (PARTITION BY user_id ORDER BY day) AS next FROM d),
deltas AS (
  SELECT day AS moment, 1 AS dau, 1 AS wau, 1 AS mau FROM s
  UNION ALL SELECT day + 1, -1, 0, 0 FROM s
  UNION ALL SELECT least(day + 7, coalesce(next, day + 7)), 0, -1, 0 FROM s
  UNION ALL SELECT least(day + 30, coalesce(next, day + 30)), 0, 0, -1 FROM s
),
steps AS (
  SELECT moment, sum(dau) AS dau, sum(wau) AS wau, sum(mau) AS mau FROM deltas GROUP BY moment
)
SELECT moment AS day,
       sum(dau) OVER w AS dau, sum(wau) OVER w AS wau, sum(mau) OVER w AS mau
FROM steps
WINDOW w AS (ORDER BY moment)
QUALIFY moment <= (SELECT max(day) FROM d)
ORDER BY day
"""


def run_usagelake(binary, lake, sql):
    started = time.perf_counter()
    output = subprocess.run(
        [binary, "--lake", lake, "--format", "csv", "-c", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, list(csv.reader(io.StringIO(output)))[1:], usage.ru_maxrss


def run_duckdb(connection, sql):
    started = time.perf_counter()
    rows = connection.execute(sql).fetchall()
    return time.perf_counter() - started, rows


def best(runs):
    return min(runs, key=lambda run: run[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    threads = os.cpu_count()
    events = os.path.join(args.lake, "events", "*", "*.parquet")

    connection = duckdb.connect()
    connection.execute(f"SET threads = {threads}")
    events_count = connection.execute(f"SELECT count(*) FROM read_parquet('{events}')").fetchone()[0]

    ours = best([run_usagelake(args.binary, args.lake, USAGELAKE_SQL) for _ in range(args.repeat)])
    scan = best([run_usagelake(args.binary, args.lake, BARE_SCAN_SQL) for _ in range(args.repeat)])
    theirs = best([run_duckdb(connection, DUCKDB_SQL.format(events=events)) for _ in range(args.repeat)])

    ours_rows = [tuple(int(v) if i else v for i, v in enumerate(row)) for row in ours[1]]
    theirs_rows = [(str(day), dau, wau, mau) for day, dau, wau, mau in theirs[1]]
    if ours_rows != theirs_rows:
        raise SystemExit(f"results differ: {ours_rows[:3]} vs {theirs_rows[:3]}")

    print(f"active_users over {events_count:,} events, {len(ours_rows)} days, {threads} threads, "
          f"best of {args.repeat}")
    print("| contender | seconds | vs usagelake |")
    print("|---|---:|---:|")
    print(f"| usagelake active_users | {ours[0]:.2f} | 1.00 |")
    print(f"| DuckDB {duckdb.__version__}, fastest plain SQL | {theirs[0]:.2f} | {theirs[0] / ours[0]:.2f} |")
    print(f"| usagelake bare scan of ts, user_id | {scan[0]:.2f} | {scan[0] / ours[0]:.2f} |")
    print(f"usagelake peak RSS (largest child process): {ours[2] / 1024:.0f} MB")


if __name__ == "__main__":
    main()
