-- How often, how long and how deep do people use the product each day? A session is a run of one
-- user's events with no pause longer than 30 minutes, counted on the UTC day it starts: sessions,
-- the users who had one, sessions per user, the median and 90th-percentile session length in
-- minutes (from the first event to the last), and events per session. The last day is flagged
-- incomplete: it had not ended at the last event.
SELECT period AS day, sessions, actors AS users, sessions_per_actor AS sessions_per_user,
       median_session_minutes, p90_session_minutes, events_per_session, period_complete
FROM sessions('events', actor => 'user_id', ts => 'ts', gap => INTERVAL '30 minutes', period => 'day')
ORDER BY day;
