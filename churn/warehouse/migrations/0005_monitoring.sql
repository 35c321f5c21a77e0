-- Model monitoring: the nightly monitor step's drift verdicts and the realized performance of
-- scored nights whose label horizon has closed (ml/monitor.py).
--
-- churn.drift_metrics: one row per night and column compared with the champion's reference (every
-- model feature, and the score itself, kind = 'score'). A rerun of a night replaces its rows in one
-- transaction. churn.drift_metrics_latest: the newest night's rows; churn.drift_nights: one row per
-- night (share of features drifted, share of the model's importance drifted).
-- churn.model_performance: per score date and model version, how the published scores ranked the
-- customers who did cancel within the horizon.
-- The monitor step writes as churn_publisher (SET ROLE), like the publish: rows in, replaced or
-- updated; no DDL. The CRM and online roles do not read these tables.

CREATE TABLE churn.drift_metrics (
    score_date                date NOT NULL,
    feature                   text NOT NULL,
    kind                      text NOT NULL CHECK (kind IN ('numeric', 'categorical', 'score')),
    test                      text NOT NULL,
    statistic                 double precision,
    threshold                 double precision,
    drifted                   boolean NOT NULL,
    importance                double precision NOT NULL DEFAULT 0,
    missing_share             double precision,
    missing_share_reference   double precision,
    unseen_categories         bigint NOT NULL DEFAULT 0,
    rows_current              bigint NOT NULL,
    rows_reference            bigint NOT NULL,
    model_name                text NOT NULL,
    model_version             text NOT NULL,
    report_uri                text,
    computed_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (score_date, feature)
);
COMMENT ON TABLE churn.drift_metrics IS 'Nightly drift of each model feature (and of the score) against the scoring model''s reference sample: Evidently''s test, statistic, verdict.';
COMMENT ON COLUMN churn.drift_metrics.statistic IS 'The test''s value: a p-value for K-S / chi-square (drifted when under the threshold), a distance for Wasserstein / Jensen-Shannon (drifted when at or over it).';
COMMENT ON COLUMN churn.drift_metrics.importance IS 'The feature''s share of the model''s total gain (0 for the score row).';
COMMENT ON COLUMN churn.drift_metrics.unseen_categories IS 'Rows of the night''s sample whose category the model never saw in training (scored as missing).';

CREATE VIEW churn.drift_metrics_latest AS
SELECT * FROM churn.drift_metrics WHERE score_date = (SELECT max(score_date) FROM churn.drift_metrics);
COMMENT ON VIEW churn.drift_metrics_latest IS 'churn.drift_metrics of the newest monitored night.';

CREATE VIEW churn.drift_nights AS
SELECT score_date, min(model_version) AS model_version,
       avg(CASE WHEN drifted THEN 1.0 ELSE 0.0 END) FILTER (WHERE kind <> 'score') AS drifted_share,
       coalesce(sum(importance) FILTER (WHERE drifted AND kind <> 'score'), 0) AS drifted_importance,
       bool_or(drifted) FILTER (WHERE kind = 'score') AS score_drifted,
       string_agg(feature, ', ' ORDER BY importance DESC) FILTER (WHERE drifted AND kind <> 'score') AS drifted_features,
       max(report_uri) AS report_uri
FROM churn.drift_metrics GROUP BY score_date;
COMMENT ON VIEW churn.drift_nights IS 'One row per monitored night: share of features drifted, and the share of the model''s importance they carry.';

CREATE TABLE churn.model_performance (
    score_date         date NOT NULL,
    model_name         text NOT NULL,
    model_version      text NOT NULL,
    horizon_days       integer NOT NULL,
    rows               bigint NOT NULL,
    positives          bigint NOT NULL,
    roc_auc            double precision,
    pr_auc             double precision,
    lift_top_10        double precision,
    capture_top_10     double precision,
    calibration_error  double precision,
    brier              double precision,
    base_rate          double precision,
    mean_predicted     double precision,
    evaluated_on       date NOT NULL,
    evaluated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (score_date, model_version)
);
COMMENT ON TABLE churn.model_performance IS 'Realized performance of a night''s published scores once its label horizon closed: did the customers ranked riskiest cancel?';

GRANT SELECT, INSERT, UPDATE, DELETE ON churn.drift_metrics, churn.model_performance TO churn_publisher;
GRANT SELECT ON churn.drift_metrics_latest, churn.drift_nights TO churn_publisher;
