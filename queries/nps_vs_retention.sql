-- Do detractors leave? The NPS of the paying accounts' users, split by whether the account
-- churned or stayed: an account that ever paid stayed when it still pays in the last month of
-- `subscriptions`, and churned otherwise (a reactivated account that pays again stayed). Free
-- accounts never pay and are left out.
WITH last_month AS (
    SELECT max(month) AS month FROM subscriptions
),
paying AS (
    SELECT
        account_id,
        CASE WHEN max(s.month) = max(l.month) THEN 'stayed' ELSE 'churned' END AS status
    FROM subscriptions AS s
    CROSS JOIN last_month AS l
    GROUP BY account_id
)
SELECT
    p.status,
    count(DISTINCT s.account_id) AS accounts,
    count(*) AS answers,
    nps(s.score) AS nps
FROM surveys AS s
JOIN paying AS p USING (account_id)
WHERE s.kind = 'nps'
GROUP BY p.status
ORDER BY p.status;
