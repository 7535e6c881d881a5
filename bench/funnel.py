"""funnel and window_funnel: actors reaching each of five adoption stages within 30 days, against
ClickHouse's own windowFunnel (chDB, same Parquet files) and DuckDB's plain SQL (ASOF joins: from
each step-1 event, the earliest next step at or after the previous one; the level is the steps
within 30 days of step 1). Only (step, actors) are compared; the rest of funnel's row is its own.
"""

import importlib.metadata
import os

from common import (Contender, check_agreement, measure, megabytes, parse_args, run_chdb,
                    run_duckdb, run_usagelake, verdict)

STEPS = ["feature_announcement_view", "feature_page_view", "pricing_view", "trial_start", "purchase"]
WINDOW_US = 30 * 86400 * 1_000_000
IN_STEPS = ", ".join(f"'{s}'" for s in STEPS)
CALL = (f"funnel('events', [{IN_STEPS}], within => INTERVAL '30 days')")
CONDITIONS = ", ".join(f"event = '{s}'" for s in STEPS)

WINDOW_FUNNEL_SQL = f"""
WITH levels AS (
  SELECT level, count(*) AS n FROM (
    SELECT user_id, window_funnel(INTERVAL '30 days', ts, {CONDITIONS}) AS level
    FROM events WHERE event IN ({IN_STEPS}) GROUP BY user_id) GROUP BY level)
SELECT s.step, CAST(sum(CASE WHEN level >= s.step THEN n ELSE 0 END) AS BIGINT) AS actors
FROM (VALUES (1), (2), (3), (4), (5)) AS s(step) CROSS JOIN levels
GROUP BY s.step ORDER BY s.step"""

CHDB_SQL = """
SELECT step, toInt64(sum(if(level >= step, n, 0))) AS actors FROM (
  SELECT level, count() AS n FROM (
    SELECT user_id, windowFunnel({window})(toUInt64(toUnixTimestamp64Micro(ts)), {conditions}) AS level
    FROM file('{files}', Parquet) WHERE event IN ({steps}) GROUP BY user_id) GROUP BY level)
ARRAY JOIN [1, 2, 3, 4, 5] AS step
GROUP BY step ORDER BY step"""

step_tables = ",\n".join(
    f"s{k} AS (SELECT u, t FROM e WHERE event = '{s}')" for k, s in enumerate(STEPS, start=1))
chains = ["c1 AS (SELECT u, t AS t1 FROM s1)"]
for k in range(2, len(STEPS) + 1):
    previous = ", ".join(f"c{k-1}.t{j}" for j in range(1, k))
    chains.append(f"c{k} AS (SELECT c{k-1}.u, {previous}, s{k}.t AS t{k} FROM c{k-1} "
                  f"ASOF LEFT JOIN s{k} ON c{k-1}.u = s{k}.u AND c{k-1}.t{k-1} <= s{k}.t)")
LEVEL = " + ".join(["1"] + [f"CAST(coalesce(t{k} <= t1 + {WINDOW_US}, false) AS INTEGER)"
                            for k in range(2, len(STEPS) + 1)])
DUCKDB_SQL = f"""
WITH e AS (SELECT user_id AS u, epoch_us(ts) AS t, event FROM {{events}} WHERE event IN ({IN_STEPS})),
{step_tables},
{", ".join(chains)},
levels AS (SELECT level, count(*) AS n FROM (SELECT u, max({LEVEL}) AS level FROM c{len(STEPS)} GROUP BY u) GROUP BY level)
SELECT s.step, CAST(sum(CASE WHEN level >= s.step THEN n ELSE 0 END) AS BIGINT) AS actors
FROM range(1, {len(STEPS) + 1}) AS s(step) CROSS JOIN levels
GROUP BY s.step ORDER BY s.step"""

SCAN_SQL = "SELECT count(*), sum(user_id), sum(CAST(ts AS BIGINT)), count(event) FROM events"


def main():
    args = parse_args("funnel")
    threads = os.cpu_count()
    files = os.path.abspath(os.path.join(args.lake, "events", "*", "*.parquet"))
    chdb_sql = CHDB_SQL.format(window=WINDOW_US, conditions=CONDITIONS, files=files, steps=IN_STEPS)
    duck_sql = DUCKDB_SQL.format(events=f"read_parquet('{files}')")

    def ours(sql, pick=None):
        def go():
            run = run_usagelake(args.binary, args.lake, sql)
            if pick:
                run = run.__class__(run.seconds, [[r[0], r[2]] for r in run.rows], run.peak_bytes)
            return run
        return go

    contenders = [
        Contender(f"usagelake `{CALL}`", ours(f"SELECT * FROM {CALL}", pick=True)),
        Contender("usagelake `window_funnel` aggregate, levels counted in SQL", ours(WINDOW_FUNNEL_SQL)),
        Contender(f"chDB {importlib.metadata.version('chdb')} (ClickHouse {importlib.metadata.version('chdb-core')}) `windowFunnel`",
                  lambda: run_chdb(threads, chdb_sql)),
        Contender(f"DuckDB {importlib.metadata.version('duckdb')}, fastest plain SQL (ASOF joins)",
                  lambda: run_duckdb(threads, duck_sql)),
        Contender("usagelake, bare scan of `user_id`, `ts`, `event`", ours(SCAN_SQL)),
    ]
    labels = [c.label for c in contenders]

    def check(first):
        reference = first[labels[3]].rows
        for label in labels[:3]:
            rows = first[label].rows
            if label == labels[2]:
                rows = [[str(c) for c in r] for r in rows]
            check_agreement(reference, label, rows)

    runs = measure(contenders, args.repeat, check)
    best = {l: min(r.seconds for r in done) for l, done in runs.items()}
    scanned = int(runs[labels[4]][0].rows[0][0])
    print(f"\n### `funnel` / `window_funnel`: actors reaching each of 5 stages within 30 days\n")
    print(f"{scanned:,} events, {threads} threads, best of {args.repeat}; actors per step agree.\n")
    print("| contender | seconds | × the function's time | peak RSS |\n|---|---:|---:|---:|")
    for l, done in runs.items():
        print(f"| {l} | {best[l]:.2f} | {best[l] / best[labels[0]]:.2f} | {megabytes(max(r.peak_bytes for r in done))} |")
    for name, l in (("funnel", labels[0]), ("window_funnel", labels[1])):
        print(f"\n{name}: over chDB {verdict(best[labels[2]] / best[l], 1.5, True)}, "
              f"over DuckDB {verdict(best[labels[3]] / best[l], 3, True)}.")
    print(f"chDB's and DuckDB's seconds are their query alone, peak RSS their whole process "
          f"({megabytes(max(r.at_rest_bytes for r in runs[labels[2]]))} / "
          f"{megabytes(max(r.at_rest_bytes for r in runs[labels[3]]))} before the query).")


if __name__ == "__main__":
    main()
