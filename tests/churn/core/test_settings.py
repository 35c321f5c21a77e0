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
                           "CHURN_PG_URL": "postgresql://crm:pw123@db:5432/churn"})
    shown = str(s.as_dict())
    assert "topsecret" not in shown and "pw123" not in shown
