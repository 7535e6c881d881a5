"""cohort_retention: the weekly retention triangle, against DuckDB, DataFusion and the bare scan.

`cohort_retention('events')`: weeks from Monday (UTC), 12 periods, first-time cohorts, any event
starts and returns. The plain SQL takes the distinct (user, week) pairs once; a user's cohort is
its first week (the smallest of its pairs, over all history), and each pair less than 12 weeks
after it counts for cell (cohort, week - cohort). The cells are zero-filled for every cohort and
period up to the last week with data (the triangle), and a cell is complete when its week ended
by the day of the last event. Joining the pairs to the per-user minimum is a little faster in
DuckDB than min() OVER (PARTITION BY user_id).
"""

from common import Benchmark, main

PLAIN_SQL = """
WITH pairs AS (SELECT DISTINCT user_id, {week} AS week FROM {events}),
cohorts AS (SELECT user_id, min(week) AS first_week FROM pairs GROUP BY user_id),
cells AS (
  SELECT first_week, week - first_week AS k, count(*) AS retained
  FROM pairs JOIN cohorts ON pairs.user_id = cohorts.user_id
  WHERE week - first_week < 12
  GROUP BY first_week, week - first_week
),
last AS (SELECT max({day}) AS day, max({week}) AS week FROM {events}),
grid AS (
  SELECT cells.first_week, cells.retained AS size, r.k
  FROM cells, range(12) AS r(k), last
  WHERE cells.k = 0 AND cells.first_week + r.k <= last.week
)
SELECT DATE '1969-12-29' + CAST(7 * grid.first_week AS INTEGER) AS cohort,
       grid.size AS cohort_size,
       CAST(grid.k AS INTEGER) AS period_number,
       coalesce(cells.retained, 0) AS retained,
       CAST(coalesce(cells.retained, 0) AS DOUBLE) / grid.size AS retention_rate,
       7 * (grid.first_week + grid.k + 1) - 3 <= last.day AS period_complete
FROM grid
LEFT JOIN cells ON cells.first_week = grid.first_week AND cells.k = grid.k
CROSS JOIN last
ORDER BY grid.first_week, grid.k
"""

BENCHMARK = Benchmark(
    function="cohort_retention",
    question="weekly retention triangle, 12 periods, first-time cohorts",
    call="cohort_retention('events')",
    plain_sql=PLAIN_SQL,
    faster_than_duckdb=2,
    within_scan=2,
)

if __name__ == "__main__":
    main(BENCHMARK)
