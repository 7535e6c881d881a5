-- Referrals by month and plan: do the teams grow themselves? For the invitations sent in each
-- month (UTC) by the owners of each plan's accounts: how many were sent and by how many owners,
-- the invitations per inviter, the share that converted (the invited user was active 7 days or
-- more after signing up) and the viral coefficient `k_factor`, the product of the two: the active
-- users each inviter brought in. The last week's invitations cannot have converted yet.
WITH inviter_plan AS (
    SELECT e.user_id AS inviter, a.plan
    FROM events AS e
    JOIN accounts AS a USING (account_id)
    WHERE e.event = 'signup'
)
SELECT
    CAST(date_trunc('month', i.invited_at) AS DATE) AS month,
    p.plan,
    count(*) AS invitations,
    count(DISTINCT i.inviter) AS inviters,
    CAST(count(*) AS DOUBLE) / count(DISTINCT i.inviter) AS invitations_per_inviter,
    avg(CASE WHEN i.converted THEN 1.0 ELSE 0.0 END) AS conversion_rate,
    k_factor(i.inviter, i.invited, i.converted) AS k_factor
FROM invitations AS i
JOIN inviter_plan AS p USING (inviter)
GROUP BY 1, 2
ORDER BY 1, 2;
