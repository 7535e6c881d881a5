"""revenue_churn: the monthly MRR movements report of 1,000,000 accounts over 36 months of
snapshots, against DuckDB, DataFusion and the bare scan.

The data is not the events lake: this script writes its own once, a lake with one table,
`subscriptions(account_id BIGINT, month DATE, mrr DECIMAL(12,2), plan VARCHAR)` (see SUBSCRIPTIONS),
and every contender reads that lake.

The plain SQL sums each account's rows of a month under one BIGINT key, account_id × 32768 +
the month's number (12 × year + month − 1; it assumes account ids below 2^48), and keeps the sums
above 0: the paying months. One window in key order, with no PARTITION BY (an account's months are
consecutive keys), gives each paying month the account's previous and next paying month: none
before is new, the month before gives expansion or contraction, an earlier one a reactivation; a
paying month whose next paying month is not the following one is the account's last before it
churns. One GROUP BY month sums all that; every month from the first to the last of the data gets
a row, zero-filled, and starting MRR and customers are the month before's ending ones, churn the
month before's leavers (lag over the months). Rates are DOUBLE divisions, NULL over 0, and LTV
divides ARPA by the mean logo churn of the up to 6 months before (a ROWS window).

DuckDB's times for other formulations, best of 2 on the quiet 2-core machine, where this one took
3.94 s: GROUP BY (account_id, month), then lag and lead PARTITION BY account_id, and churn from a
second GROUP BY of the leavers (DuckDB materialises the shared CTE) 4.16 s; the same with the one
month-level GROUP BY above 4.32 s; a self-join of the paying months on the key + 1 (a FULL JOIN,
with each account's first paying month from a GROUP BY account_id) 4.46 s; sums over RANGE frames
of the raw rows (this month, the one before, all before, the one after), no GROUP BY, 6.24 s; the
complete account × month grid from each account's first paying month to the last month, left
joined to the sums, with lag over it, 7.13 s. On DataFusion the first of these took about 30 s,
this one 6.5 s.
"""

import os
import shutil
from dataclasses import dataclass

from common import Benchmark, main

ACCOUNTS = 1_000_000
MONTHS = 36
FIRST_MONTH = "2023-01-01"
HERE = os.path.dirname(os.path.abspath(__file__))
LAKE = os.environ.get("BENCH_REVENUE", os.path.join(HERE, ".revenue"))

# Deterministic: every random draw is a hash of the account (and month), so the same rows come out
# on every machine and thread count. Per account: a start month (a quarter of the accounts were
# customers before the data starts, the rest start uniformly over the 35 later months); a plan tier
# (55% starter, 30% pro, 12% business, 3% enterprise) and a price in it; a lifetime with a monthly
# churn hazard of 3.5%, 2%, 1.2% or 0.7% by tier; 15% of churned accounts come back after 1 to 6
# months for a second lifetime; two price changes at random months (mostly expansion, else
# contraction); 10% of the accounts that start after the first month have a trial month at 0 MRR
# before they pay. 1% of the paying account-months are two rows (75% and 25%). The plan column
# follows the account's MRR in the month.
SUBSCRIPTIONS = f"""
CREATE TEMP MACRO draw(a, k) AS (hash(a * 64 + k) % 1000000) / 1e6;
CREATE TEMP TABLE accounts AS
WITH draws AS (
  SELECT a,
    CASE WHEN draw(a, 1) < 0.25 THEN 0
         ELSE 1 + CAST(floor(draw(a, 2) * {MONTHS - 1}) AS INTEGER) END AS start,
    CASE WHEN draw(a, 3) < 0.55 THEN 1 WHEN draw(a, 3) < 0.85 THEN 2 WHEN draw(a, 3) < 0.97 THEN 3
         ELSE 4 END AS tier,
    draw(a, 4) AS price, draw(a, 5) AS life, draw(a, 6) AS back, draw(a, 7) AS gap,
    draw(a, 8) AS life2, draw(a, 9) AS trial, draw(a, 10) AS c1, draw(a, 11) AS c2,
    draw(a, 12) AS f1, draw(a, 13) AS f2
  FROM range(1, {ACCOUNTS} + 1) AS r(a)
)
SELECT a, start,
  [19, 99, 500, 2000][tier] + price * [60, 400, 1500, 18000][tier] AS base,
  start + 1 + CAST(floor(ln(life + 1e-9) / ln(1 - [0.035, 0.02, 0.012, 0.007][tier])) AS INTEGER)
    AS stop,
  back < 0.15 AS comes_back,
  1 + CAST(floor(gap * 6) AS INTEGER) AS gap,
  1 + CAST(floor(ln(life2 + 1e-9) / ln(1 - [0.035, 0.02, 0.012, 0.007][tier])) AS INTEGER) AS life2,
  trial < 0.10 AND start > 0 AS trial,
  start + 1 + CAST(floor(c1 * 40) AS INTEGER) AS c1,
  start + 2 + CAST(floor(c1 * 40) AS INTEGER) + CAST(floor(c2 * 40) AS INTEGER) AS c2,
  CASE WHEN f1 < 0.65 THEN 1.1 + f1 ELSE 0.5 + (f1 - 0.65) END AS f1,
  CASE WHEN f2 < 0.6 THEN 1.1 + f2 ELSE 0.4 + (f2 - 0.6) END AS f2
FROM draws;
CREATE TEMP TABLE paid AS
WITH months AS (
  SELECT a, unnest(range(start, least(stop, {MONTHS}))) AS m FROM accounts
  UNION ALL
  SELECT a, unnest(range(stop + gap, least(stop + gap + life2, {MONTHS}))) AS m
  FROM accounts WHERE comes_back
)
SELECT months.a, m,
  CAST(round(base * CASE WHEN m >= c1 THEN f1 ELSE 1 END * CASE WHEN m >= c2 THEN f2 ELSE 1 END, 2)
    AS DECIMAL(12, 2)) AS mrr
FROM months JOIN accounts USING (a);
CREATE TEMP TABLE subscriptions AS
WITH rows AS (
  SELECT a, m, mrr, mrr AS total FROM paid WHERE draw(a * 40 + m, 14) >= 0.01
  UNION ALL
  SELECT a, m, CAST(round(mrr * 0.75, 2) AS DECIMAL(12, 2)), mrr FROM paid
  WHERE draw(a * 40 + m, 14) < 0.01
  UNION ALL
  SELECT a, m, CAST(mrr - round(mrr * 0.75, 2) AS DECIMAL(12, 2)), mrr FROM paid
  WHERE draw(a * 40 + m, 14) < 0.01
  UNION ALL
  SELECT a, start - 1, 0, 0 FROM accounts WHERE trial
)
SELECT CAST(a AS BIGINT) AS account_id,
  CAST(DATE '{FIRST_MONTH}' + to_months(CAST(m AS INTEGER)) AS DATE) AS month,
  CAST(mrr AS DECIMAL(12, 2)) AS mrr,
  CASE WHEN total = 0 THEN 'trial' WHEN total < 100 THEN 'starter' WHEN total < 500 THEN 'pro'
       WHEN total < 2000 THEN 'business' ELSE 'enterprise' END AS plan
FROM rows
"""

# Several files, each six months of rows, sorted by month then account; row groups of at most 1M
# rows. DuckDB closes a row group at the first vector of 2,048 rows that reaches its target, so the
# target leaves room for one (1,000,000 made groups of 1,001,472).
MONTHS_PER_FILE = 6
ROW_GROUP_SIZE = 480 * 2048


def subscriptions_lake(_events_lake):
    """The lake holding `subscriptions`, written once (into a temporary folder, then renamed)."""
    table = os.path.join(LAKE, "subscriptions")
    if os.path.isdir(table):
        return LAKE
    import duckdb

    partial = LAKE + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(os.path.join(partial, "subscriptions"))
    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")
    connection.execute(SUBSCRIPTIONS)
    for number, first in enumerate(range(0, MONTHS, MONTHS_PER_FILE)):
        path = os.path.join(partial, "subscriptions", f"part-{number:05d}.parquet")
        connection.execute(f"""
            COPY (SELECT * FROM subscriptions
                  WHERE month >= DATE '{FIRST_MONTH}' + to_months({first})
                    AND month < DATE '{FIRST_MONTH}' + to_months({first + MONTHS_PER_FILE})
                  ORDER BY month, account_id)
            TO '{path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE})""")
    files = os.path.join(partial, "subscriptions", "*.parquet")
    rows, accounts, groups, largest = connection.execute(f"""
        SELECT (SELECT count(*) FROM subscriptions),
               (SELECT count(DISTINCT account_id) FROM subscriptions),
               count(*), max(row_group_num_rows)
        FROM (SELECT DISTINCT file_name, row_group_id, row_group_num_rows
              FROM parquet_metadata('{files}'))""").fetchone()
    if largest > 1_000_000:
        raise SystemExit(f"a row group of {largest:,} rows: at most 1,000,000 wanted")
    shutil.rmtree(LAKE, ignore_errors=True)
    os.rename(partial, LAKE)
    print(f"wrote {LAKE}: subscriptions, {rows:,} rows of {accounts:,} accounts over {MONTHS} "
          f"months, {groups} row groups in {len(range(0, MONTHS, MONTHS_PER_FILE))} files")
    return LAKE


@dataclass(frozen=True)
class Dialect:
    """The subscriptions table, a month's whole number and the whole division, as one engine
    spells them."""

    subscriptions: str
    month_number: str
    whole: str

    def sql(self, template):
        """The template in this dialect."""
        return template.format(
            subscriptions=self.subscriptions, month_number=self.month_number, whole=self.whole
        )


def duckdb_dialect(lake):
    """DuckDB reads the Parquet files directly; its `/` is a float division, `//` whole."""
    return Dialect(
        subscriptions=f"read_parquet('{os.path.join(lake, 'subscriptions', '*.parquet')}')",
        month_number="(12 * year(month) + month(month) - 1)",
        whole="//",
    )


DATAFUSION = Dialect(
    subscriptions="subscriptions",
    month_number="(12 * CAST(date_part('year', month) AS BIGINT) "
    "+ CAST(date_part('month', month) AS BIGINT) - 1)",
    whole="/",
)

PLAIN_SQL = """
WITH paid AS (
  SELECT account_id * 32768 + {month_number} AS k, sum(mrr) AS m
  FROM {subscriptions}
  GROUP BY account_id * 32768 + {month_number}
  HAVING sum(mrr) > 0
),
neighbours AS (
  SELECT k, m, lag(k) OVER w AS prev_k, lag(m) OVER w AS prev_m, lead(k) OVER w AS next_k
  FROM paid
  WINDOW w AS (ORDER BY k)
),
steps AS (
  SELECT k % 32768 AS mi, m, prev_m,
    CASE WHEN prev_k {whole} 32768 = k {whole} 32768 THEN prev_k % 32768 END AS prev_mi,
    CASE WHEN next_k {whole} 32768 = k {whole} 32768 THEN next_k % 32768 END AS next_mi
  FROM neighbours
),
moves AS (
  SELECT mi,
    sum(CASE WHEN prev_mi IS NULL THEN m ELSE 0 END) AS new_mrr,
    sum(CASE WHEN prev_mi = mi - 1 AND m > prev_m THEN m - prev_m ELSE 0 END) AS expansion_mrr,
    sum(CASE WHEN prev_mi < mi - 1 THEN m ELSE 0 END) AS reactivation_mrr,
    sum(CASE WHEN prev_mi = mi - 1 AND m < prev_m THEN m - prev_m ELSE 0 END) AS contraction_mrr,
    sum(m) AS ending_mrr,
    sum(CASE WHEN next_mi = mi + 1 THEN 0 ELSE m END) AS leaving_mrr,
    sum(CASE WHEN prev_mi IS NULL THEN 1 ELSE 0 END) AS new_customers,
    sum(CASE WHEN prev_mi < mi - 1 THEN 1 ELSE 0 END) AS reactivated_customers,
    count(*) AS customers_end,
    sum(CASE WHEN next_mi = mi + 1 THEN 0 ELSE 1 END) AS leaving_customers
  FROM steps
  GROUP BY mi
),
bounds AS (SELECT min({month_number}) AS first, max({month_number}) AS last FROM {subscriptions}),
months AS (SELECT unnest(range(first, last + 1)) AS mi FROM bounds),
filled AS (
  SELECT months.mi,
    coalesce(new_mrr, 0) AS new_mrr,
    coalesce(expansion_mrr, 0) AS expansion_mrr,
    coalesce(reactivation_mrr, 0) AS reactivation_mrr,
    coalesce(contraction_mrr, 0) AS contraction_mrr,
    coalesce(ending_mrr, 0) AS ending_mrr,
    coalesce(leaving_mrr, 0) AS leaving_mrr,
    coalesce(new_customers, 0) AS new_customers,
    coalesce(reactivated_customers, 0) AS reactivated_customers,
    coalesce(customers_end, 0) AS customers_end,
    coalesce(leaving_customers, 0) AS leaving_customers
  FROM months
  LEFT JOIN moves ON moves.mi = months.mi
),
totals AS (
  SELECT mi,
    coalesce(lag(ending_mrr) OVER w, 0) AS starting_mrr,
    new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr,
    -coalesce(lag(leaving_mrr) OVER w, 0) AS churned_mrr,
    ending_mrr,
    coalesce(lag(customers_end) OVER w, 0) AS customers_start,
    new_customers, reactivated_customers,
    coalesce(lag(leaving_customers) OVER w, 0) AS churned_customers,
    customers_end
  FROM filled
  WINDOW w AS (ORDER BY mi)
),
rates AS (
  SELECT *,
    CASE WHEN customers_start = 0 THEN NULL
         ELSE CAST(churned_customers AS DOUBLE) / CAST(customers_start AS DOUBLE) END
      AS logo_churn_rate,
    CASE WHEN starting_mrr = 0 THEN NULL
         ELSE CAST(-(contraction_mrr + churned_mrr) AS DOUBLE) / CAST(starting_mrr AS DOUBLE) END
      AS gross_revenue_churn_rate,
    CASE WHEN starting_mrr = 0 THEN NULL
         ELSE CAST(-(contraction_mrr + churned_mrr + expansion_mrr + reactivation_mrr) AS DOUBLE)
              / CAST(starting_mrr AS DOUBLE) END AS net_revenue_churn_rate,
    CASE WHEN starting_mrr = 0 THEN NULL
         ELSE CAST(starting_mrr + contraction_mrr + churned_mrr AS DOUBLE)
              / CAST(starting_mrr AS DOUBLE) END AS grr,
    CASE WHEN starting_mrr = 0 THEN NULL
         ELSE CAST(starting_mrr + expansion_mrr + contraction_mrr + churned_mrr AS DOUBLE)
              / CAST(starting_mrr AS DOUBLE) END AS nrr,
    CASE WHEN contraction_mrr + churned_mrr = 0 THEN NULL
         ELSE CAST(new_mrr + expansion_mrr AS DOUBLE)
              / CAST(-(contraction_mrr + churned_mrr) AS DOUBLE) END AS quick_ratio,
    CASE WHEN customers_end = 0 THEN NULL
         ELSE CAST(ending_mrr AS DOUBLE) / CAST(customers_end AS DOUBLE) END AS arpa
  FROM totals
),
report AS (
  SELECT *,
    avg(logo_churn_rate) OVER (ORDER BY mi ROWS BETWEEN 6 PRECEDING AND 1 PRECEDING) AS mean_churn
  FROM rates
)
SELECT make_date(CAST(mi {whole} 12 AS INTEGER), CAST(mi % 12 + 1 AS INTEGER), 1) AS period,
  starting_mrr, new_mrr, expansion_mrr, reactivation_mrr, contraction_mrr, churned_mrr, ending_mrr,
  customers_start, new_customers, reactivated_customers, churned_customers, customers_end,
  logo_churn_rate, gross_revenue_churn_rate, net_revenue_churn_rate, grr, nrr, quick_ratio, arpa,
  CASE WHEN mean_churn IS NULL OR mean_churn = 0 THEN NULL ELSE arpa / mean_churn END AS ltv,
  mi < last AS period_complete
FROM report CROSS JOIN bounds
ORDER BY mi
"""

BENCHMARK = Benchmark(
    function="revenue_churn",
    question="MRR movements, churn, GRR, NRR, quick ratio, ARPA and LTV of every month",
    call="revenue_churn('subscriptions')",
    plain_sql=PLAIN_SQL,
    faster_than_duckdb=2,
    within_scan=None,
    lake=subscriptions_lake,
    duckdb_dialect=duckdb_dialect,
    datafusion_dialect=DATAFUSION,
    scan_sql="SELECT count(*), sum(account_id), sum(CAST(month AS BIGINT)), sum(mrr) "
    "FROM subscriptions",
    scan_label="usagelake, bare scan of `account_id`, `month`, `mrr`",
    rows_are="subscription rows",
    # LTV's mean of six rates is summed in another order by each engine's window, so its last
    # digit may differ; the tolerance covers every float column, but money and counts (DECIMAL
    # and integers) are compared exactly. The other rates came out equal to the last digit.
    float_tolerance=1e-12,
)

if __name__ == "__main__":
    main(BENCHMARK)
