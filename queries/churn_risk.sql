-- Which accounts should customer success call this week? The paying accounts drifting away, as
-- of 2024-12-30, the last day of the sample lake: their usage in the last 28 days (to that day,
-- UTC) against the 28 days before, and the reasons they are listed, in this order: 'inactive'
-- (no event for 14 days or more), 'usage_drop' (events fell by more than half:
-- usage_change below -0.5; -1 is usage stopped), 'feature_dropped' (a feature used in the
-- previous 28 days and not in the last 28; features_dropped names them). The most severe come
-- first: the longest inactive, then the largest drop. With each account its plan, its segment
-- and its customer-success manager (csm, NULL when none is assigned), from accounts.
--
-- Choices: free accounts are left out: they have no subscription to lose and no one assigned to
-- call them (drop the WHERE to see them too). Only event = 'feature_use' uses a feature: the
-- adoption stages (feature_announcement_view, ..., purchase) name a feature too, and a user who
-- looked at a pricing page last month has not dropped a feature it never used, so the query
-- given to churn_risk sets their feature to NULL (they still count as events). as_of is written
-- out rather than left to default to the last day with data, so that the windows are fixed and
-- only their 56 days are read.
SELECT
    r.account_id,
    a.plan,
    a.segment,
    a.csm,
    r.reasons,
    r.days_inactive,
    r.last_seen,
    r.events_current,
    r.events_previous,
    r.usage_change,
    r.active_days_current,
    r.active_days_previous,
    r.features_dropped
FROM churn_risk(
    'SELECT account_id, ts, CASE WHEN event = ''feature_use'' THEN feature END AS feature
     FROM events
     WHERE plan <> ''free''',
    as_of => DATE '2024-12-30'
) AS r
JOIN accounts AS a ON a.account_id = r.account_id
ORDER BY r.days_inactive DESC, r.usage_change ASC NULLS LAST, r.account_id;
