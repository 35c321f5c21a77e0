import pytest

from churn.core.errors import ConfigError
from churn.core.settings import load_settings


def test_defaults_live_under_churn_home(tmp_path):
    s = load_settings(env={"CHURN_HOME": str(tmp_path)})
    assert s.lake_uri == str(tmp_path / "lake")
    assert s.raw_uri == str(tmp_path / "raw")
    assert s.reports_dir == str(tmp_path / "reports")
    assert s.table_uri("gold", "customer_features") == f"{tmp_path}/lake/gold/customer_features"
    assert not s.is_s3


def test_env_overrides_yaml_overrides_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lake_uri: s3a://bucket/lake\nlabel_horizon_days: 14\ns3_access_key: a\ns3_secret_key: b\n")
    s = load_settings(env={"CHURN_HOME": str(tmp_path), "CHURN_CONFIG": str(cfg), "CHURN_LABEL_HORIZON_DAYS": "21"})
    assert s.lake_uri == "s3a://bucket/lake" and s.is_s3
    assert s.label_horizon_days == 21
    assert s.table_uri("bronze", "usage") == "s3a://bucket/lake/bronze/usage"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CHURN_LABEL_HORIZON_DAYS": "thirty"}, "CHURN_LABEL_HORIZON_DAYS"),
        ({"CHURN_LABEL_HORIZON_DAYS": "0"}, "label_horizon_days"),
        ({"CHURN_S3_PATH_STYLE": "maybe"}, "CHURN_S3_PATH_STYLE"),
        ({"CHURN_LAKE_URI": "hdfs://x/y"}, "lake_uri"),
        ({"CHURN_LAKE_URI": "s3a://b/l", "CHURN_S3_ENDPOINT": "http://127.0.0.1:9000"}, "CHURN_S3_ACCESS_KEY"),
        ({"CHURN_CONFIG": "/nonexistent.yaml"}, "/nonexistent.yaml"),
    ],
)
def test_bad_settings_name_the_setting(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env={"CHURN_HOME": str(tmp_path), **env})


def test_unknown_yaml_key_is_rejected(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lake_url: /tmp/x\n")
    with pytest.raises(ConfigError, match="unknown setting.*lake_url"):
        load_settings(env={"CHURN_HOME": str(tmp_path), "CHURN_CONFIG": str(cfg)})


def test_secrets_are_redacted(tmp_path):
    s = load_settings(env={"CHURN_HOME": str(tmp_path), "CHURN_S3_SECRET_KEY": "topsecret",
                           "CHURN_PG_URL": "postgresql://crm:pw123@db:5432/churn"})  # pragma: allowlist secret
    shown = str(s.as_dict())
    assert "topsecret" not in shown and "pw123" not in shown


def test_every_form_of_credential_is_redacted_in_repr_logs_and_errors(tmp_path, caplog, capsys, monkeypatch):
    import logging

    from churn.core import logs
    from churn.core.settings import redact_text, redact_url

    secrets = {"CHURN_S3_SECRET_KEY": "s3-planted-1", "CHURN_PG_URL": "postgresql://db/churn?user=crm&password=pg-planted-2",  # pragma: allowlist secret
               "CHURN_MLFLOW_URI": "http://ml:ml-planted-3@mlflow:5000", "CHURN_KFP_HOST": "https://kfp:8888?token=kfp-planted-4"}  # pragma: allowlist secret
    s = load_settings(env={"CHURN_HOME": str(tmp_path), **secrets})
    planted = ["s3-planted-1", "pg-planted-2", "ml-planted-3", "kfp-planted-4"]
    for shown in (repr(s), str(s), str(s.as_dict())):
        assert not [p for p in planted if p in shown], shown
    assert redact_url("host=db user=crm password='a b' dbname=x") == "host=db user=crm password=*** dbname=x"  # pragma: allowlist secret
    assert redact_url("s3a://bucket/lake") == "s3a://bucket/lake"
    # a log line and an error carrying them, as a failing driver or psycopg would word it
    logs.setup(settings=s)
    logging.getLogger().addHandler(caplog.handler)
    logs.redact_with(s)
    text = "connect to postgresql://db/churn?user=crm&password=pg-planted-2 failed; key s3-planted-1, ml-planted-3"
    logging.getLogger("churn.test").error("boom: %s", text)
    assert not [p for p in planted if p in caplog.text] and "password=***" in caplog.text
    assert not [p for p in planted if p in redact_text(text, s)]
    # a command that fails with a secret in its error text prints it redacted
    from churn.cli import main

    for k, v in {**secrets, "CHURN_HOME": str(tmp_path)}.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    assert main(["publish", "--date", "2026-03-01"]) != 0  # PostgreSQL "db" does not resolve: the URL is in the error
    err = capsys.readouterr().err
    assert "error:" in err and not [p for p in planted if p in err], err
