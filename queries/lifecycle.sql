-- Weekly lifecycle of the users (weeks start on Monday, UTC): each week's new users, returning
-- users (also active the week before), resurrected users (back after a gap) and users gone
-- dormant (negative): is the user base growing by acquisition, by retention, or leaking?
-- period_complete is false for the week still running at the last event.
SELECT period AS week, status, actors AS users, period_complete
FROM lifecycle('events', period => 'week');
