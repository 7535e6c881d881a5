-- How often do users come back? Every user seen in the last 90 days, counted by the number of days
-- they used the product in the last 28 (up to the last day with data), with each count's share
-- and band: weight at the daily and weekly end is a habit; a large 'forgettable' row (seen in the
-- last 90 days but not in the last 28) is users slipping away.
SELECT days_active, actors, share, cumulative_share, band
FROM usage_frequency('events', actor => 'user_id', ts => 'ts', window_days => 28, lookback_days => 90)
ORDER BY days_active;
