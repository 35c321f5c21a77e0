-- Online features: each active customer's model-ready feature vector of a published night, for the
-- online predictor's lookups by customer id. Written by the nightly publish from
-- gold/customer_features (no second implementation of any feature), one partition per snapshot
-- date, attached in the same transaction as that night's scores: the predictor reads the features
-- of the newest published night, the night whose scores CRM sees. A publish keeps the newest few
-- nights (CHURN_ONLINE_FEATURES_KEEP) and drops older partitions.

CREATE TABLE churn.online_features (
    customer_id                  text NOT NULL,
    snapshot_date                date NOT NULL,
    gender                       text,
    senior_citizen               double precision,
    partner                      text,
    dependents                   text,
    contract                     text,
    phone_service                text,
    multiple_lines               text,
    internet_service             text,
    online_security              text,
    online_backup                text,
    device_protection            text,
    tech_support                 text,
    streaming_tv                 text,
    streaming_movies             text,
    paperless_billing            text,
    payment_method               text,
    region                       text,
    monthly_charges              double precision,
    tenure_months                double precision,
    sessions_7d                  double precision,
    sessions_30d                 double precision,
    sessions_90d                 double precision,
    data_mb_7d                   double precision,
    data_mb_30d                  double precision,
    data_mb_90d                  double precision,
    minutes_7d                   double precision,
    minutes_30d                  double precision,
    minutes_90d                  double precision,
    active_days_30d              double precision,
    sessions_trend_7_30          double precision,
    sessions_trend_30_90         double precision,
    data_trend_7_30              double precision,
    invoices_90d                 double precision,
    late_invoices_90d            double precision,
    max_days_late_90d            double precision,
    overdue_amount               double precision,
    tickets_30d                  double precision,
    tickets_90d                  double precision,
    open_tickets                 double precision,
    billing_tickets_90d          double precision,
    technical_tickets_90d        double precision,
    cancellation_inquiries_90d   double precision,
    plan_changes_90d             double precision,
    downgrades_90d               double precision,
    charge_change_90d            double precision,
    days_since_last_change       double precision,
    PRIMARY KEY (customer_id, snapshot_date)
) PARTITION BY LIST (snapshot_date);
COMMENT ON TABLE churn.online_features IS 'Model-ready feature vectors of each published night (one partition per snapshot date), looked up by the online predictor.';
REVOKE ALL ON churn.online_features FROM PUBLIC;

-- The predictor's role: read the online features and the published runs, nothing else.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'churn_online_reader') THEN
        CREATE ROLE churn_online_reader NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE churn_online_reader IS 'Read access for the online predictor: churn.online_features and churn.scoring_runs.';
GRANT USAGE ON SCHEMA churn TO churn_online_reader;
GRANT SELECT ON churn.online_features, churn.scoring_runs TO churn_online_reader;
