-- Events and active users per UTC day: the pulse of the product, weekday dips included.
SELECT
    date                    AS day,
    count(*)                AS events,
    count(DISTINCT user_id) AS active_users
FROM events
GROUP BY date
ORDER BY day;
