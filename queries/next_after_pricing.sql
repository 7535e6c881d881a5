-- What do users do right after they first view pricing? For each user who ever had a
-- pricing_view, the event that came next after the first one (sequence_next_node from the first
-- match, forward), counted per next event, with its share of those users; "(nothing)" is a user
-- whose first pricing view was their last event in the lake. On the sample lake most log in again
-- or log out next (43% and 28%): the trial starts come on later days, not right after. Events at
-- the same instant are read in the order of their names, as ClickHouse's sequenceNextNode reads
-- them.
SELECT
    COALESCE(next_event, '(nothing)') AS next_event,
    COUNT(*) AS users,
    ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (), 1) AS share_pct
FROM (
    SELECT
        user_id,
        sequence_next_node('forward', 'first_match', ts, event,
                           event = 'pricing_view', event = 'pricing_view') AS next_event
    FROM events
    GROUP BY user_id
    HAVING bool_or(event = 'pricing_view')
) AS after_pricing
GROUP BY 1
ORDER BY users DESC, next_event;
