"""sessions: sessions per UTC day, their users, median and p90 length, events per session, against
DuckDB, DataFusion and the bare scan.

`sessions('events')`: a session is a run of one user's events with no pause longer than 30
minutes. The plain SQL is the usual window formulation: `lag` flags the events more than 30
minutes after the user's previous one (or first), a running `sum` of the flags numbers the
sessions, `GROUP BY user, session` gives each session's first and last event and its events, and
a `GROUP BY` day counts them, with `median` and `percentile_cont(0.9)` (both exact, interpolated)
of the lengths in minutes. A day is complete when it lies before the day of the last event.
Times are whole microseconds, as the function reads them. DataFusion's percentile_cont truncates
the interpolation weight to a millionth where DuckDB's is exact: p90 values may differ by that, and
are compared to a relative 1e-5.
"""

import os
from dataclasses import dataclass

from common import Benchmark, main

PLAIN_SQL = """
WITH flagged AS (
  SELECT user_id, {micros} AS t,
         CASE WHEN {micros} - lag({micros}) OVER (PARTITION BY user_id ORDER BY {micros}) <= 1800000000
              THEN 0 ELSE 1 END AS starts
  FROM {events}
),
numbered AS (
  SELECT user_id, t,
         sum(starts) OVER (PARTITION BY user_id ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
  FROM flagged
),
cut AS (
  SELECT user_id, min(t) AS started, max(t) AS ended, count(*) AS events
  FROM numbered GROUP BY user_id, session
),
days AS (
  SELECT (started {div} 86400000000) AS day, user_id,
         CAST(ended - started AS DOUBLE) / 60000000.0 AS minutes, events, ended
  FROM cut
),
last AS (SELECT (max(ended) {div} 86400000000) AS day FROM cut)
SELECT DATE '1970-01-01' + CAST(days.day AS INTEGER) AS period,
       count(*) AS sessions,
       count(DISTINCT user_id) AS actors,
       CAST(count(*) AS DOUBLE) / count(DISTINCT user_id) AS sessions_per_actor,
       median(minutes) AS median_session_minutes,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY minutes) AS p90_session_minutes,
       avg(CAST(events AS DOUBLE)) AS events_per_session,
       days.day < min(last.day) AS period_complete
FROM days CROSS JOIN last
GROUP BY days.day
ORDER BY days.day
"""


@dataclass(frozen=True)
class SessionDialect:
    """The events table, a time in microseconds and the whole division, as one engine spells them
    (DuckDB's `/` divides as floats, `//` as whole numbers; DataFusion's `/` of integers is whole)."""

    events: str
    micros: str
    div: str

    def sql(self, template):
        return template.format(events=self.events, micros=self.micros, div=self.div)


def duckdb_dialect(lake):
    return SessionDialect(
        events=f"read_parquet('{os.path.join(lake, 'events', '*', '*.parquet')}')",
        micros="epoch_us(ts)",
        div="//",
    )


DATAFUSION = SessionDialect(events="events", micros="CAST(ts AS BIGINT)", div="/")

BENCHMARK = Benchmark(
    function="sessions",
    question="sessions per day: users, median and p90 length, events per session",
    call="sessions('events')",
    plain_sql=PLAIN_SQL,
    faster_than_duckdb=2,
    within_scan=None,
    duckdb_dialect=duckdb_dialect,
    datafusion_dialect=DATAFUSION,
    float_tolerance=1e-5,
)

if __name__ == "__main__":
    main(BENCHMARK)
