"""feature_adoption: eligible actors, adopters, adoption rate and days to adopt (median, p90) of
each feature, with the lake's `features` table as launches, against DuckDB, DataFusion and the
bare scan. Per actor its first and last event, per (feature, actor) its first use and uses; a
feature's launch is the earlier of its released_at and its first use by anyone; eligible actors'
last event is at or after the launch; days run from the later of first seen and the launch.
"""

import os
from dataclasses import dataclass

from common import Benchmark, main


@dataclass(frozen=True)
class Dialect:
    events: str
    features: str
    us: str
    released: str
    stamp: str

    def sql(self, template):
        return template.format(events=self.events, features=self.features, us=self.us,
                               released=self.released, stamp=self.stamp)


def duckdb_dialect(lake):
    return Dialect(
        events=f"read_parquet('{os.path.join(lake, 'events', '*', '*.parquet')}')",
        features=f"read_parquet('{os.path.join(lake, 'features.parquet')}')",
        us="epoch_us(ts)", released="epoch_us(released_at)", stamp="make_timestamp(launch)")


DATAFUSION = Dialect(events="events", features="features", us="CAST(ts AS BIGINT)",
                     released="CAST(released_at AS BIGINT)", stamp="to_timestamp_micros(launch)")

PLAIN_SQL = """
WITH ev AS (SELECT user_id AS u, {us} AS t, feature AS f FROM {events} WHERE user_id IS NOT NULL),
actors AS (SELECT u, min(t) AS first_seen, max(t) AS last_t FROM ev GROUP BY u),
uses AS (SELECT f, u, min(t) AS first_use FROM ev WHERE f IS NOT NULL GROUP BY f, u),
used AS (SELECT f, min(first_use) AS first_any FROM uses GROUP BY f),
launches AS (SELECT feature AS f, min({released}) AS released FROM {features}
             WHERE feature IS NOT NULL GROUP BY feature),
feats AS (SELECT coalesce(used.f, launches.f) AS f, least(used.first_any, launches.released) AS launch
          FROM used FULL JOIN launches ON used.f = launches.f),
eligible AS (SELECT feats.f, count(*) AS n FROM feats JOIN actors ON actors.last_t >= feats.launch
             GROUP BY feats.f),
adopters AS (
  SELECT uses.f, CAST(uses.first_use - greatest(actors.first_seen, feats.launch) AS DOUBLE)
                 / CAST(86400000000 AS DOUBLE) AS days
  FROM uses JOIN actors ON uses.u = actors.u JOIN feats ON uses.f = feats.f),
stats AS (SELECT f, count(*) AS n,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY days) AS med,
            percentile_cont(0.9) WITHIN GROUP (ORDER BY days) AS p90
          FROM adopters GROUP BY f)
SELECT feats.f AS feature, {stamp} AS launched, coalesce(e.n, 0) AS eligible,
       coalesce(s.n, 0) AS adopters,
       CASE WHEN coalesce(e.n, 0) = 0 THEN NULL
            ELSE CAST(coalesce(s.n, 0) AS DOUBLE) / CAST(e.n AS DOUBLE) END AS adoption_rate,
       s.med AS median_days_to_adopt, s.p90 AS p90_days_to_adopt
FROM feats LEFT JOIN eligible e ON e.f = feats.f LEFT JOIN stats s ON s.f = feats.f
ORDER BY feature
"""

BENCHMARK = Benchmark(
    function="feature_adoption",
    question="eligible, adopters, adoption rate and days to adopt of every feature",
    call="feature_adoption('events', launches => 'features')",
    plain_sql=PLAIN_SQL,
    faster_than_duckdb=2,
    within_scan=None,
    duckdb_dialect=duckdb_dialect,
    datafusion_dialect=DATAFUSION,
    scan_sql="SELECT count(*), sum(user_id), sum(CAST(ts AS BIGINT)), count(feature) FROM events",
    scan_label="usagelake, bare scan of `user_id`, `ts`, `feature`",
    # Days to adopt (and the rate) to 1e-9; eligible and adopters are integers, compared exactly.
    float_tolerance=1e-9,
)

if __name__ == "__main__":
    main(BENCHMARK)
