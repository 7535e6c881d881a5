-- Revenue of one calendar month (UTC), per plan: what was invoiced and paid in it, and by how
-- many accounts, for --var month=YYYY-MM (any day of the month also works: YYYY-MM-DD).
--     usagelake run queries/monthly_revenue.sql --var month=2024-03 --output s3://bucket/revenue/
-- A yearly invoice counts whole in the month it was paid (invoices_to_mrr.sql spreads it).
WITH bounds AS (
    SELECT
        date_trunc('month', CAST(${month} || CASE WHEN length(${month}) = 7 THEN '-01' ELSE '' END AS TIMESTAMP)) AS month_start
)
SELECT
    CAST(b.month_start AS DATE)                         AS month,
    a.plan,
    count(DISTINCT i.account_id)                        AS paying_accounts,
    count(*)                                            AS invoices,
    sum(i.amount)                                       AS revenue
FROM invoices i
JOIN accounts a USING (account_id)
CROSS JOIN bounds b
WHERE i.paid_at >= b.month_start
  AND i.paid_at < b.month_start + INTERVAL '1 month'
GROUP BY b.month_start, a.plan
ORDER BY a.plan;
