-- Daily KPIs of one UTC day, for a scheduled job:
--     usagelake run queries/daily_kpis.sql --var run_date=2024-03-01 --output s3://bucket/kpis/daily/
-- One row per plan (from the event, as the account had it then): events, active users and
-- accounts, signups, and the features used. The time range on ts prunes the day's partition.
SELECT
    DATE ${run_date}                                    AS day,
    plan,
    count(*)                                            AS events,
    count(DISTINCT user_id)                             AS active_users,
    count(DISTINCT account_id)                          AS active_accounts,
    count(*) FILTER (WHERE event = 'signup')            AS signups,
    count(DISTINCT feature)                             AS features_used
FROM events
WHERE ts >= CAST(DATE ${run_date} AS TIMESTAMP)
  AND ts < CAST(DATE ${run_date} AS TIMESTAMP) + INTERVAL '1 day'
GROUP BY plan
ORDER BY plan;
