-- The publishing role: it owns what a publish swaps, and nothing else.
--
-- A publish detaches and attaches day partitions, which PostgreSQL allows only to the owner of the
-- partitioned table. Until now the publish ran as whoever ran the migrations (the database owner,
-- a superuser in the embedded profile): a publish bug or a leaked publishing credential could drop
-- the migration history, the roles' grants or the run log. Now `churn publish` works as
-- churn_publisher (SET ROLE, CHURN_PG_PUBLISH_ROLE), which:
--   * owns churn.customer_scores and churn.online_features and their day partitions (it swaps and
--     prunes them) and creates its loads in churn_staging;
--   * may add rows to churn.scoring_runs and churn.features and update them (no DELETE, no DDL);
--   * cannot touch churn.schema_migrations, the views, the other roles or their grants.
-- Grant it to the login role the publish step connects with: GRANT churn_publisher TO <login>.
-- Migrations keep running as the database owner, made a member of churn_publisher below.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'churn_publisher') THEN
        CREATE ROLE churn_publisher NOLOGIN;
    END IF;
END
$$;
COMMENT ON ROLE churn_publisher IS 'The nightly publish: owns churn.customer_scores and churn.online_features (it swaps their day partitions); appends to churn.scoring_runs and churn.features.';

-- handing tables to a role takes membership in it (a superuser has it; a database owner with
-- CREATEROLE that runs the migrations grants it to itself here)
GRANT churn_publisher TO CURRENT_USER;

-- its loads: tables of its own in churn_staging; SET SCHEMA of a loaded day into churn needs CREATE there
GRANT USAGE, CREATE ON SCHEMA churn_staging TO churn_publisher;
GRANT USAGE, CREATE ON SCHEMA churn TO churn_publisher;

-- what it swaps: the two partitioned tables, every day already attached, and loads a killed
-- publish left behind (the next publish drops them)
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND (
                   (n.nspname = 'churn' AND c.relname IN ('customer_scores', 'online_features'))
                OR c.oid IN (SELECT inhrelid FROM pg_inherits
                             WHERE inhparent IN ('churn.customer_scores'::regclass, 'churn.online_features'::regclass))
                OR n.nspname = 'churn_staging') LOOP
        EXECUTE format('ALTER TABLE %I.%I OWNER TO churn_publisher', r.nspname, r.relname);
    END LOOP;
END
$$;

-- the run log and the reasons' descriptions: rows in and updated, never deleted or redefined
GRANT SELECT, INSERT, UPDATE ON churn.scoring_runs, churn.features TO churn_publisher;
