-- Survey scores by plan: how many users answered each survey, the Net Promoter Score of the NPS
-- answers (% of 9-10 minus % of 0-6, from -100 to 100) and the Customer Effort Score (the mean
-- answer from 1 to 7) of the CES answers. The plan is the account's, from `accounts`.
SELECT
    a.plan,
    count(*) FILTER (WHERE s.kind = 'nps') AS nps_answers,
    nps(s.score) FILTER (WHERE s.kind = 'nps') AS nps,
    count(*) FILTER (WHERE s.kind = 'ces') AS ces_answers,
    ces(s.score) FILTER (WHERE s.kind = 'ces') AS ces
FROM surveys AS s
JOIN accounts AS a USING (account_id)
GROUP BY a.plan
ORDER BY a.plan;
