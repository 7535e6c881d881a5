-- How far do users get through a launch's adoption stages, and where do they drop off? For each
-- feature launched during the year (ai_assistant, workflows, anomaly_detection), the users at
-- each of the five stages, in order: feature_announcement_view (awareness) -> feature_page_view
-- (interest) -> pricing_view (evaluation) -> trial_start (trial) -> purchase (adoption).
-- A user reaches a stage when it passed every stage before it in order, all within 90 days of
-- its announcement view (ClickHouse's windowFunnel). conversion_from_first is the share of the
-- announcement's viewers that got this far, conversion_from_previous the share of the previous
-- stage's users that took this step: the smallest one is the biggest leak.
-- median_days_from_previous is the median time the step took (from the first chain of stages
-- that reached the user's furthest stage), in days.
--
-- One funnel per feature (segment => 'feature'): the stages of one feature's launch follow each
-- other, and a single funnel over all three would chain one feature's announcement to another's
-- pricing page. 90 days, a quarter, lets most buyers in (the median user takes about 45 days
-- from the announcement to the purchase) without crediting a launch for a purchase months
-- later. Users who saw an announcement in the last 90 days of the lake are still inside their
-- window: the later stages of the latest launch (anomaly_detection, end of September) are still
-- filling.
SELECT
    feature,
    step,
    step_name,
    actors                                  AS users,
    conversion_from_first,
    conversion_from_previous,
    median_seconds_from_previous / 86400.0  AS median_days_from_previous
FROM funnel(
    'events',
    ['feature_announcement_view', 'feature_page_view', 'pricing_view', 'trial_start', 'purchase'],
    within => INTERVAL '90 days',
    segment => 'feature'
)
ORDER BY feature, step;
