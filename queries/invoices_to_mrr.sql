-- Monthly MRR snapshots from the invoices: what each account paid for each month, as one row per
-- account and month (account_id, month DATE, mrr DECIMAL, plan from accounts), the shape that
-- revenue_churn reads. A monthly invoice counts whole in the month it was paid (UTC); a yearly one
-- pays for the 12 months from its month, so to_mrr spreads it as amount / 12 over each of them
-- (to_mrr keeps the DECIMAL, at a scale of 6); a 'quarter' one, which the sample lake has not,
-- would be amount / 3 over 3 months. Invoices of one account in one month add up. The
-- months run from the first to the last month with an invoice: the months of a yearly term after
-- that are not reported, as they have no monthly invoices beside them yet. On the sample lake the
-- result equals subscriptions summed per account and month.
--
-- A table function cannot see a WITH of the query around it; give it this query as a view:
--
--     CREATE VIEW monthly_mrr AS <this query>;
--     SELECT * FROM revenue_churn('monthly_mrr', segment => 'plan');
--
-- or as a string, its quotes doubled: revenue_churn('WITH spread AS (...) SELECT ...').
WITH spread AS (
    SELECT
        i.account_id,
        a.plan,
        unnest(generate_series(
            period_start(i.paid_at, 'month', 'UTC'),
            period_start(i.paid_at, 'month', 'UTC')
                + CASE i.billing_interval
                      WHEN 'year' THEN INTERVAL '11 months'
                      WHEN 'quarter' THEN INTERVAL '2 months'
                      ELSE INTERVAL '0 months'
                  END,
            INTERVAL '1 month'
        ))                                   AS month,
        to_mrr(i.amount, i.billing_interval) AS mrr
    FROM invoices AS i
    JOIN accounts AS a USING (account_id)
)
SELECT account_id, month, sum(mrr) AS mrr, plan
FROM spread
WHERE month <= (SELECT max(period_start(paid_at, 'month', 'UTC')) FROM invoices)
GROUP BY account_id, month, plan
ORDER BY month, account_id;
