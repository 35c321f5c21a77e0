-- Customer ids are opaque keys: compare and sort them byte by byte (COLLATE "C"), not by the
-- server's locale.
--
-- Every publish builds the day partitions' primary keys (customer_id, date) over the whole base, a
-- sort of every customer id. Under a libc locale (C.UTF-8 in the embedded profile, often
-- en_US.UTF-8 on a managed server) each comparison is a strcoll() call and PostgreSQL cannot use
-- its abbreviated sort keys; under "C" it compares bytes. Measured on the 10M-customer night of
-- benchmarks/nightly.py (PostgreSQL 15, loopback): the scores table's key took 7.8 s under
-- C.UTF-8 and 4.4 s under "C". Lookups by id (the online predictor, CRM) use the same index, and a
-- locale change on the server (a glibc upgrade reordering strings) can no longer leave these
-- indexes out of order. Ids hold the same values; only their order in the index changes (where ids
-- differ only in case or accents it is byte order).
--
-- The rows are not rewritten (the type stays text), but every published day's key is rebuilt in
-- the migration's transaction, which holds both tables exclusively meanwhile: about 4 s per 10M-row
-- day and table on two cores. Databases with many published days should run `churn db upgrade` in a quiet
-- hour rather than leave it to the nightly's first step.
--
-- The view over the scores depends on the column's type: it is dropped and created again as it was.

DROP VIEW churn.customer_scores_latest;
ALTER TABLE churn.customer_scores ALTER COLUMN customer_id TYPE text COLLATE "C";
ALTER TABLE churn.online_features ALTER COLUMN customer_id TYPE text COLLATE "C";

-- as in 0002_partitioned_scores.sql
CREATE VIEW churn.customer_scores_latest AS
SELECT s.customer_id, s.score_date, s.churn_probability, s.risk_decile, s.risk_band,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('feature', r.feature, 'description', coalesce(f.description, r.feature),
                                                     'value', r.value, 'contribution', r.contribution) ORDER BY r.k), '[]')
        FROM (VALUES (1, s.reason_1_feature, s.reason_1_value, s.reason_1_contribution),
                     (2, s.reason_2_feature, s.reason_2_value, s.reason_2_contribution),
                     (3, s.reason_3_feature, s.reason_3_value, s.reason_3_contribution)) r(k, feature, value, contribution)
        LEFT JOIN churn.features f ON f.feature = r.feature
        WHERE r.feature IS NOT NULL) AS reasons,
       s.reason_1_feature, s.reason_1_value, s.reason_1_contribution,
       s.reason_2_feature, s.reason_2_value, s.reason_2_contribution,
       s.reason_3_feature, s.reason_3_value, s.reason_3_contribution,
       s.model_name, s.model_version, s.model_run_id, s.scoring_run_id
FROM churn.customer_scores s
WHERE s.score_date = (SELECT max(score_date) FROM churn.scoring_runs WHERE status = 'succeeded');
COMMENT ON VIEW churn.customer_scores_latest IS 'The newest published score date: one row per customer scored that night (the active base), reasons as JSON [{feature, description, value, contribution}].';
REVOKE ALL ON churn.customer_scores_latest FROM PUBLIC;
GRANT SELECT ON churn.customer_scores_latest TO churn_crm_reader;
