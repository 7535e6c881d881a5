"""lifecycle: new, returning, resurrecting and dormant users of every week, against DuckDB,
DataFusion and the bare scan.

`lifecycle('events')`: weeks from Monday (UTC). The plain SQL takes the distinct (user, week)
pairs once and looks at each user's previous and next active week (lag and lead over the user's
weeks): no previous week is `new` (first seen over all history), the week before is `returning`,
an earlier one `resurrecting`; a pair whose next active week is not the following one makes the
user `dormant` (counted -1) in the following week. Every week from the first to the last with
data gets the four statuses, zero-filled; a week is complete when it ended by the day of the last
event.
"""

from common import Benchmark, main

PLAIN_SQL = """
WITH pairs AS (SELECT DISTINCT user_id, {week} AS week FROM {events}),
neighbours AS (
  SELECT week, lag(week) OVER u AS previous, lead(week) OVER u AS next
  FROM pairs
  WINDOW u AS (PARTITION BY user_id ORDER BY week)
),
counts AS (
  SELECT week,
         CASE WHEN previous IS NULL THEN 0 WHEN previous = week - 1 THEN 1 ELSE 2 END AS s,
         count(*) AS actors
  FROM neighbours
  GROUP BY 1, 2
  UNION ALL
  SELECT week + 1, 3, -count(*) FROM neighbours WHERE next IS NULL OR next > week + 1 GROUP BY 1, 2
),
last AS (SELECT max({day}) AS day FROM {events}),
weeks AS (SELECT unnest(range(min(week), max(week) + 1)) AS week FROM pairs),
grid AS (SELECT weeks.week, r.s FROM weeks, range(4) AS r(s))
SELECT DATE '1969-12-29' + CAST(7 * grid.week AS INTEGER) AS period,
       CASE grid.s WHEN 0 THEN 'new' WHEN 1 THEN 'returning' WHEN 2 THEN 'resurrecting'
                        ELSE 'dormant' END AS status,
       coalesce(counts.actors, 0) AS actors,
       7 * (grid.week + 1) - 3 <= last.day AS period_complete
FROM grid
LEFT JOIN counts ON counts.week = grid.week AND counts.s = grid.s
CROSS JOIN last
ORDER BY grid.week, grid.s
"""

BENCHMARK = Benchmark(
    function="lifecycle",
    question="new, returning, resurrecting and dormant users of every week",
    call="lifecycle('events')",
    plain_sql=PLAIN_SQL,
    faster_than_duckdb=2,
    within_scan=2,
)

if __name__ == "__main__":
    main(BENCHMARK)
