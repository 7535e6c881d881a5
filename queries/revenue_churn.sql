-- How did recurring revenue move each month? The MRR movements report of the subscriptions
-- (monthly MRR snapshots; an account's rows in a month are summed): each month's MRR bridge from
-- starting to ending MRR through new business, expansion, reactivation (back after a gap),
-- contraction and churn (negative), the accounts behind them, and the churn rates. Read a row
-- left to right: ending_mrr = starting_mrr + new + expansion + reactivation + contraction +
-- churned, and a month starts where the one before ended. net_revenue_churn_rate below 0 means
-- expansion and reactivation outgrew the losses; quick_ratio is new and expansion MRR per unit of
-- MRR lost (above 4 is healthy growth). The first month has no month before it: all its MRR is
-- new. period_complete is false for the month of the last snapshot, still running.
SELECT
    period                      AS month,
    starting_mrr,
    new_mrr,
    expansion_mrr,
    reactivation_mrr,
    contraction_mrr,
    churned_mrr,
    ending_mrr,
    ending_mrr - starting_mrr   AS net_new_mrr,
    customers_start,
    new_customers,
    reactivated_customers,
    churned_customers,
    customers_end,
    logo_churn_rate,
    gross_revenue_churn_rate,
    net_revenue_churn_rate,
    quick_ratio,
    period_complete
FROM revenue_churn('subscriptions')
ORDER BY month;
