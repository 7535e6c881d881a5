-- Week-over-week retention for the week starting on --var week_start=YYYY-MM-DD (UTC): of the
-- users active in the 7 days before it, how many were active again in its 7 days, per device.
--     usagelake run queries/weekly_retention_report.sql --var week_start=2024-03-04 --output ...
CREATE VIEW report_weeks AS
SELECT
    CAST(DATE ${week_start} AS TIMESTAMP) - INTERVAL '7 days' AS previous_start,
    CAST(DATE ${week_start} AS TIMESTAMP)                     AS week_start,
    CAST(DATE ${week_start} AS TIMESTAMP) + INTERVAL '7 days' AS week_end;

CREATE VIEW previous_week AS
SELECT DISTINCT e.user_id, e.device
FROM events e, report_weeks w
WHERE e.ts >= w.previous_start AND e.ts < w.week_start;

CREATE VIEW this_week AS
SELECT DISTINCT e.user_id
FROM events e, report_weeks w
WHERE e.ts >= w.week_start AND e.ts < w.week_end;

SELECT
    DATE ${week_start}                                   AS week_start,
    p.device,
    count(DISTINCT p.user_id)                            AS previous_week_users,
    count(DISTINCT t.user_id)                            AS retained_users,
    CAST(count(DISTINCT t.user_id) AS DOUBLE)
        / count(DISTINCT p.user_id)                      AS retention_rate
FROM previous_week p
LEFT JOIN this_week t ON t.user_id = p.user_id
GROUP BY p.device
ORDER BY p.device;
