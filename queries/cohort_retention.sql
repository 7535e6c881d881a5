-- Weekly signup cohorts (weeks start on Monday, UTC): of the users who signed up in a week, what
-- share came back (any event) 1, 2, ... 11 weeks later? Is retention improving for newer cohorts,
-- and where does it flatten? period_complete is false for the weeks still running at the last
-- event; the triangle stops at the last week with data.
SELECT cohort, cohort_size, period_number, retained, retention_rate, period_complete
FROM cohort_retention('events', period => 'week', periods => 12,
                      start_filter => 'event = ''signup''');
