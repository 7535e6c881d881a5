-- Do paying plans use the product longer? Sessions (runs of one user's events with no pause longer
-- than 30 minutes) per plan and calendar month, each plan computed as if it were its own table
-- (the plan is the event's, so a user who upgrades has sessions in both), with the median and
-- 90th-percentile length in minutes and the events per session.
SELECT plan, period AS month, sessions, actors AS users, median_session_minutes,
       p90_session_minutes, events_per_session
FROM sessions('events', gap => INTERVAL '30 minutes', period => 'month', segment => 'plan')
ORDER BY plan, month;
