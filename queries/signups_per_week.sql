-- New users per week (weeks start on Monday, UTC) and the running total: is acquisition growing?
SELECT
    week,
    signups,
    sum(signups) OVER (ORDER BY week) AS total_users
FROM (
    SELECT CAST(date_trunc('week', ts) AS DATE) AS week, count(*) AS signups
    FROM events
    WHERE event = 'signup'
    GROUP BY 1
)
ORDER BY week;
