-- Did users adopt each feature? For every feature of the product: the users who could have
-- adopted it (eligible: any event at or after its launch), those who used it (adopters), the
-- adoption rate, and how many days an adopter took to its first use, from the later of the
-- launch and its own first event (median and 90th percentile, exact). adoption_rate is a
-- fraction: 250 adopters of 1,000 eligible users is 0.25, read 25%. A launch is the features
-- table's released_at; the five features that predate the lake were there before every user, so
-- all users are eligible and their days to adopt run from a user's first event; ai_assistant,
-- workflows and anomaly_detection launch during the year, and only the users still around after
-- the launch are eligible. Oldest feature first.
--
-- Only event = 'feature_use' is a use: the adoption stages (feature_announcement_view,
-- feature_page_view, pricing_view, trial_start, purchase) name the feature too, and counted as
-- uses they would make everyone who saw the announcement an adopter (about 60% of the eligible
-- users instead of 4% for ai_assistant). So feature_adoption reads the events through a query
-- that sets the feature of the other events to NULL: they still count towards eligibility and
-- first seen.
SELECT feature, launched, eligible, adopters, adoption_rate, median_days_to_adopt, p90_days_to_adopt
FROM feature_adoption(
    'SELECT user_id, ts, CASE WHEN event = ''feature_use'' THEN feature END AS feature
     FROM events',
    launches => 'features'
)
ORDER BY launched, feature;
