-- Net and gross revenue retention by plan, month by month: of the MRR each plan had at the start
-- of a month, how much was still there at its end, counting expansion (NRR) or only the losses
-- (GRR)? NRR = (starting + expansion + contraction + churned) / starting, GRR = (starting +
-- contraction + churned) / starting; contraction and churned are negative. New business and
-- reactivated accounts are left out of both, so NRR above 1 means the plan's existing customers
-- grow by themselves, and 1 - GRR is the share of its MRR lost that month. Each plan is computed
-- as if it were its own table: an account that changed plan would churn from the old one and be
-- new in the new one. A plan's first month has no starting MRR: NRR and GRR are NULL there.
-- period_complete is false for the month of the last snapshot, still running.
SELECT
    plan,
    period AS month,
    starting_mrr,
    expansion_mrr,
    contraction_mrr,
    churned_mrr,
    nrr,
    grr,
    period_complete
FROM revenue_churn('subscriptions', segment => 'plan')
ORDER BY plan, month;
