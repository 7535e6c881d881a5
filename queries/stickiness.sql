-- Stickiness: of the users active in the last 30 days, what share come back on a given day
-- (DAU/MAU), day by day, with the weekly view (WAU) beside it. A falling DAU/MAU with a steady MAU
-- means the same people come less often.
SELECT day, dau, wau, mau, dau_mau
FROM active_users('events')
ORDER BY day;
