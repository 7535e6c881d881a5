-- How much each feature is used, by how many users, and since when.
SELECT
    feature,
    count(*)                AS uses,
    count(DISTINCT user_id) AS users,
    min(ts)                 AS first_use
FROM events
WHERE event = 'feature_use'
GROUP BY feature
ORDER BY uses DESC, feature;
