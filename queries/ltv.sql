-- What is a customer of each plan worth over its lifetime? Revenue LTV per plan, as of the last
-- complete month: that month's ARPA (ending MRR per paying account) divided by the plan's mean
-- monthly logo churn rate over the six complete months ending with it, with the ltv() scalar.
-- A customer that churns with probability c each month stays 1 / c months on average
-- (expected_lifetime_months), paying ARPA each month. Six months smooth out a single bad or
-- lucky month yet follow the recent trend; the month still running is left out, as its churn is
-- not known yet. revenue_churn's own ltv column is the rolling variant of the same figure: each
-- month's ARPA over the mean churn of the six months before it. LTV is NULL where no account of
-- the plan churned in those months: no finite lifetime can be estimated yet. Multiply by the
-- gross margin (ltv(arpa, churn, 0.8)) for the gross-profit LTV to set against acquisition cost.
WITH monthly AS (
    SELECT
        plan,
        period AS month,
        customers_end,
        arpa,
        avg(logo_churn_rate) OVER (
            PARTITION BY plan ORDER BY period ROWS BETWEEN 5 PRECEDING AND CURRENT ROW
        ) AS mean_logo_churn_rate,
        row_number() OVER (PARTITION BY plan ORDER BY period DESC) AS months_back
    FROM revenue_churn('subscriptions', segment => 'plan')
    WHERE period_complete
)
SELECT
    plan,
    month,
    customers_end                         AS customers,
    arpa,
    mean_logo_churn_rate,
    1.0 / nullif(mean_logo_churn_rate, 0) AS expected_lifetime_months,
    ltv(arpa, mean_logo_churn_rate)       AS ltv
FROM monthly
WHERE months_back = 1
ORDER BY plan;
