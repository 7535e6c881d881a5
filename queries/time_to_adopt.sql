-- How long do users take to adopt each feature, and is it faster on some plans? Per feature and
-- plan, the adopters (users with at least one feature_use) and the days each took from the later
-- of the feature's launch (the features table's released_at) and its own first event to its
-- first use: the median and the 90th percentile, exact (interpolated as percentile_cont). For
-- the five features that predate the lake this is the time from a user's first event; for
-- ai_assistant, workflows and anomaly_detection, launched during the year, it runs from the
-- launch for the users already there. A median far below the p90 means most adopters come
-- quickly and a tail much later; few adopters make a plan's figures noisy.
--
-- Each plan is computed as if it were its own table (segment => 'plan'; an account's users share
-- its plan). Only event = 'feature_use' is a use: the adoption stages (feature_announcement_view,
-- ..., purchase) name the feature too and would count the day a user saw the announcement as
-- its adoption, so the query given to feature_adoption sets their feature to NULL (they still
-- count as the user's first event).
SELECT
    feature,
    plan,
    adopters,
    median_days_to_adopt,
    p90_days_to_adopt
FROM feature_adoption(
    'SELECT user_id, ts, plan, CASE WHEN event = ''feature_use'' THEN feature END AS feature
     FROM events',
    launches => 'features',
    segment => 'plan'
)
ORDER BY feature, plan;
