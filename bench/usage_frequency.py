"""usage_frequency: how many of the last 28 days users were active, against DuckDB, DataFusion
and the bare scan.

`usage_frequency('events')`: as of the last day with data (UTC), users seen in the 90 days up to
it, by their distinct active days in the 28 days up to it. The plain SQL reads only the look-back
(a filter on `ts` itself, which DuckDB pushes into its scan), takes the distinct (user, day)
pairs, counts each user's days in the window, and zero-fills the histogram from 0 to 28 days;
`cumulative_share` is the share of users with at least that many days. The issue sets no speed
target for this function.
"""

from common import Benchmark, main

PLAIN_SQL = """
WITH pairs AS (
  SELECT DISTINCT user_id, {day} AS day FROM {events}
  WHERE ts >= (SELECT date_trunc('day', max(ts)) FROM {events}) - INTERVAL '89 days'
),
per_actor AS (
  SELECT count(*) FILTER (WHERE pairs.day > last.day - 28) AS days_active
  FROM pairs CROSS JOIN (SELECT max(day) AS day FROM pairs) AS last
  GROUP BY pairs.user_id
),
histogram AS (SELECT days_active, count(*) AS actors FROM per_actor GROUP BY days_active),
counted AS (
  SELECT r.d AS days_active,
         coalesce(histogram.actors, 0) AS actors,
         sum(coalesce(histogram.actors, 0)) OVER (ORDER BY r.d DESC) AS at_least,
         sum(coalesce(histogram.actors, 0)) OVER () AS total
  FROM range(29) AS r(d) LEFT JOIN histogram ON histogram.days_active = r.d
)
SELECT CAST(days_active AS INTEGER) AS days_active,
       actors,
       CASE WHEN total > 0 THEN CAST(actors AS DOUBLE) / total END AS share,
       CASE WHEN total > 0 THEN CAST(at_least AS DOUBLE) / total END AS cumulative_share,
       CASE WHEN days_active >= 20 THEN 'daily' WHEN days_active >= 4 THEN 'weekly'
            WHEN days_active >= 1 THEN 'monthly' ELSE 'forgettable' END AS band
FROM counted
ORDER BY days_active
"""

BENCHMARK = Benchmark(
    function="usage_frequency",
    question="users of the 90-day look-back by active days in the last 28",
    call="usage_frequency('events')",
    plain_sql=PLAIN_SQL,
    faster_than_duckdb=None,
    within_scan=None,
)

if __name__ == "__main__":
    main(BENCHMARK)
