-- Published churn scores for CRM teams: schema churn, read by the role churn_crm_reader.
-- Loads go through schema churn_staging (COPY), never visible to CRM readers.

CREATE SCHEMA IF NOT EXISTS churn;
CREATE SCHEMA IF NOT EXISTS churn_staging;
COMMENT ON SCHEMA churn IS 'Churn platform: published customer churn scores (read-only for CRM).';
COMMENT ON SCHEMA churn_staging IS 'Churn platform: bulk-load staging, internal to the publisher.';

CREATE TABLE churn.scoring_runs (
    run_id            uuid PRIMARY KEY,
    score_date        date NOT NULL,
    model_name        text NOT NULL,
    model_version     text NOT NULL,
    model_run_id      text,
    status            text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    rows_expected     bigint,
    rows_loaded       bigint,
    rows_published    bigint,
    started_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    load_seconds      double precision,
    publish_seconds   double precision,
    error             text
);
CREATE INDEX scoring_runs_date_idx ON churn.scoring_runs (score_date, started_at DESC);
COMMENT ON TABLE churn.scoring_runs IS 'One row per publish attempt of a score date: model, row counts, timings, outcome.';
COMMENT ON COLUMN churn.scoring_runs.rows_expected IS 'Rows of gold/customer_scores for the date (Delta), reconciled before commit.';
COMMENT ON COLUMN churn.scoring_runs.rows_published IS 'Rows that replaced the date in churn.customer_scores.';

CREATE TABLE churn.customer_scores (
    customer_id        text NOT NULL,
    score_date         date NOT NULL,
    churn_probability  double precision NOT NULL CHECK (churn_probability BETWEEN 0 AND 1),
    risk_decile        smallint NOT NULL CHECK (risk_decile BETWEEN 1 AND 10),
    risk_band          text NOT NULL CHECK (risk_band IN ('low', 'medium', 'high')),
    reasons            jsonb NOT NULL,
    model_name         text NOT NULL,
    model_version      text NOT NULL,
    model_run_id       text,
    scoring_run_id     uuid NOT NULL REFERENCES churn.scoring_runs (run_id),
    PRIMARY KEY (customer_id, score_date)
);
CREATE INDEX customer_scores_date_risk_idx ON churn.customer_scores (score_date, risk_decile, churn_probability DESC);
COMMENT ON TABLE churn.customer_scores IS 'Churn score history: one row per customer per score date (a rerun replaces its date).';
COMMENT ON COLUMN churn.customer_scores.churn_probability IS 'Probability that the customer cancels within the label horizon (calibrated).';
COMMENT ON COLUMN churn.customer_scores.risk_decile IS '1 = the riskiest 10 % of the customers scored that day, 10 = the safest.';
COMMENT ON COLUMN churn.customer_scores.risk_band IS 'low / medium / high, from the platform''s risk band thresholds.';
COMMENT ON COLUMN churn.customer_scores.reasons IS 'Top 3 features raising the risk: [{feature, description, value, contribution (log-odds)}].';
COMMENT ON COLUMN churn.customer_scores.model_version IS 'MLflow registered model version that produced the score.';

CREATE TABLE churn.customer_scores_latest (
    customer_id        text PRIMARY KEY,
    score_date         date NOT NULL,
    churn_probability  double precision NOT NULL,
    risk_decile        smallint NOT NULL,
    risk_band          text NOT NULL,
    reasons            jsonb NOT NULL,
    model_name         text NOT NULL,
    model_version      text NOT NULL,
    model_run_id       text,
    scoring_run_id     uuid NOT NULL
);
CREATE INDEX customer_scores_latest_risk_idx ON churn.customer_scores_latest (risk_band, churn_probability DESC);
COMMENT ON TABLE churn.customer_scores_latest IS 'Each customer''s most recent score (one row per customer).';

-- The CRM role: read the published tables, nothing else (no staging, no writes).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'churn_crm_reader') THEN
        CREATE ROLE churn_crm_reader NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE churn_crm_reader IS 'Read-only access to the published churn scores (grant it to CRM login roles).';
REVOKE ALL ON SCHEMA churn_staging FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA churn FROM PUBLIC;
GRANT USAGE ON SCHEMA churn TO churn_crm_reader;
GRANT SELECT ON churn.customer_scores, churn.customer_scores_latest, churn.scoring_runs TO churn_crm_reader;
