"""The platform's Helm chart, offline: `helm lint --strict`, the strict values schema, every rendered
document of every environment validated (core kinds by kubernetes-validate, custom resources against
their upstream CRD schemas), the workload policy, and who may reach what."""

import pytest
import yaml

from tests.support import k8s
from tests.support.chart import CHART, ENVIRONMENTS, helm, render


def kinds(docs) -> dict:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_chart_lints_strictly(environment):
    out = helm("lint", "--strict", str(CHART), "-f", str(CHART / f"values-{environment}.yaml"))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_rendered_document_is_valid_and_every_workload_follows_the_policy(environment):
    docs = render(environment=environment)
    how = {k: k8s.validate(d) for k, d in kinds(docs).items()}
    assert len(how) == len(docs), "two documents share a kind and name"
    workloads = [c for d in docs for c in k8s.check_workload_policy(d)]
    assert len(workloads) >= 4
    # nothing is exposed outside the cluster unless a value says so; no Secret is ever rendered
    assert not [d for d in docs if d["kind"] in {"Ingress", "Secret"}]
    assert all(d["spec"].get("type", "ClusterIP") == "ClusterIP" for d in docs if d["kind"] == "Service")
    present = {k for k, _ in how}
    assert {"InferenceService", "Deployment", "Role", "RoleBinding", "ServiceAccount", "NetworkPolicy", "ConfigMap",
            "ServiceMonitor", "PodMonitor", "PrometheusRule", "Cluster", "Job"} <= present, present
    assert ("StatefulSet" in present) == (environment != "prod")  # prod's S3 is an external service


def test_the_environments_differ_where_they_should():
    dev, prod = (kinds(render(environment=e)) for e in ("dev", "prod"))
    assert dev[("Cluster", "churn-pg")]["spec"]["instances"] == 1 and prod[("Cluster", "churn-pg")]["spec"]["instances"] == 3
    assert ("StatefulSet", "churn-minio") in dev and ("StatefulSet", "churn-minio") not in prod
    mlflow = prod[("Deployment", "churn-mlflow")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "MLFLOW_S3_ENDPOINT_URL", "value": "https://s3.eu-west-1.amazonaws.com"} in mlflow["env"]
    assert ("AuthorizationPolicy", "churn-callers") in prod and ("AuthorizationPolicy", "churn-callers") not in dev


def test_values_are_checked_before_anything_renders():
    for bad, message in [
        ("predictor.minReplicas=-1", "minReplicas: Must be greater than or equal to 0"),
        ("predictor.resources.limits.memory=lots", "limits.memory: Does not match pattern"),
        ("predictor.modelName=Churn_Model", "modelName: Does not match pattern"),
        ("surprise=1", "Additional property surprise is not allowed"),
        ("spark.driver.memory=4GB", "memory: Does not match pattern"),
        ("pushgateway.image=quay.io/prometheus/pushgateway:latest", "pushgateway.image: Must not validate the schema"),
        ("s3.minio.image=quay.io/minio/minio", "image: Does not match pattern"),
        ("environment=qa", "environment: environment must be one of"),
        # KServe: a RawDeployment (a Deployment and an HPA) scales on cpu or memory only
        ("predictor.scaleMetric=concurrency", "scaleMetric: predictor.scaleMetric must be one of"),
        ("predictor.minReplicas=5", "minReplicas (5) must not exceed predictor.maxReplicas (4)"),
        ("postgres.cloudnativepg.enabled=false", "postgres: set postgres.externalHost"),
        ("istio.enabled=true", "istio.predictorPrincipals: name at least one caller"),
    ]:
        out = helm("template", "churn", str(CHART), "--set", bad)
        assert out.returncode != 0 and message in out.stderr, (bad, out.stderr)
    # Serverless (Knative) may scale on concurrency
    (isvc,) = [d for d in render("predictor.deploymentMode=Serverless", "predictor.scaleMetric=concurrency")
               if d["kind"] == "InferenceService"]
    assert isvc["spec"]["predictor"]["scaleMetric"] == "concurrency"


def test_one_value_switches_minio_for_an_external_s3_endpoint():
    docs = kinds(render("s3.externalEndpoint=https://s3.example.net"))
    assert not [k for k in docs if "minio" in k[1]]
    mlflow = docs[("Deployment", "churn-mlflow")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "MLFLOW_S3_ENDPOINT_URL", "value": "https://s3.example.net"} in mlflow["env"]


def test_each_component_gets_only_its_own_secret_and_none_is_a_value():
    docs = kinds(render())
    values = yaml.safe_load((CHART / "values.yaml").read_text())["secrets"]
    isvc = docs[("InferenceService", "churn")]["spec"]["predictor"]["containers"][0]
    assert isvc["envFrom"] == [{"secretRef": {"name": values["predictor"]}}]
    mlflow = docs[("Deployment", "churn-mlflow")]["spec"]["template"]["spec"]
    assert mlflow["containers"][0]["envFrom"] == [{"secretRef": {"name": values["mlflow"]}}]
    assert mlflow["volumes"][0]["secret"]["secretName"] == values["mlflow"]
    minio = docs[("StatefulSet", "churn-minio")]["spec"]["template"]["spec"]["containers"][0]
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in minio["env"] if "valueFrom" in e} == {values["minio"]}
    templates = docs[("ConfigMap", "churn-airflow-k8s")]["data"]
    app = yaml.safe_load(templates["spark-application.yaml"].replace("{{", "").replace("}}", ""))
    for role in ("driver", "executor"):
        assert app["spec"][role]["envFrom"] == [{"secretRef": {"name": values["jobs"]}}]
    assert values["database"] not in templates["spark-application.yaml"]
    assert yaml.safe_load(templates["profile.yaml"])["database_secret"] == values["database"]
    for d in docs.values():  # no credentials in any env value
        for c in [c for _, spec in k8s.pod_specs(d) for c in spec["containers"]]:
            for e in c.get("env", []):
                assert "@" not in str(e.get("value", "")) and not e["name"].endswith(("PASSWORD", "SECRET_KEY")) \
                    or "valueFrom" in e, (d["metadata"]["name"], e)


def test_the_predictor_is_reachable_from_the_online_apps_only_and_reaches_postgres_and_mlflow_only():
    docs = kinds(render(environment="staging"))
    policy = docs[("NetworkPolicy", "churn-predictor")]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert [f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for f in ingress["from"]] == \
        ["online-apps", "monitoring"]
    targets = [t["podSelector"]["matchLabels"] for rule in policy["egress"] for t in rule["to"]]
    assert [t.get("cnpg.io/cluster") or t["app.kubernetes.io/component"] for t in targets] == ["churn-pg", "mlflow"]
    # every platform pod is denied everything else (DNS aside)
    deny = docs[("NetworkPolicy", "churn-default-deny")]["spec"]
    assert deny["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "churn-platform"}
    assert [p["port"] for r in deny["egress"] for p in r["ports"]] == [53, 53] and "ingress" not in deny
    # with Istio, only the named service accounts may call it
    authz = docs[("AuthorizationPolicy", "churn-callers")]["spec"]
    assert authz["action"] == "ALLOW"
    assert authz["rules"][0]["from"][0]["source"]["principals"] == ["cluster.local/ns/online-apps/sa/retention-offers"]
    # the CRM namespace reaches PostgreSQL, and nothing of the platform's but the database
    pg = docs[("NetworkPolicy", "churn-postgres")]["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "crm"}}} in pg
    for name, d in docs.items():
        if d["kind"] == "NetworkPolicy" and name[1] != "churn-postgres":
            assert "crm" not in yaml.safe_dump(d), name


def test_exposing_mlflow_takes_a_value_and_a_host():
    out = helm("template", "churn", str(CHART), "--set", "expose.mlflow.enabled=true")
    assert out.returncode != 0 and "expose.mlflow.host" in out.stderr
    (ingress,) = [d for d in render("expose.mlflow.enabled=true", "expose.mlflow.host=mlflow.example.net")
                  if d["kind"] == "Ingress"]
    k8s.validate(ingress)


def test_the_monitoring_objects_carry_the_platforms_own_rules_and_dashboards():
    docs = kinds(render())
    rules = yaml.safe_load((CHART / "files" / "prometheus" / "rules.yaml").read_text())
    assert docs[("PrometheusRule", "churn-rules")]["spec"] == rules
    dashboards = {k[1] for k in docs if k[0] == "ConfigMap" and "grafana_dashboard" in docs[k]["metadata"]["labels"]}
    assert dashboards == {f"churn-dashboard-{p.stem}" for p in (CHART / "files" / "grafana").glob("*.json")}
    # the predictor's scrape job is the one the rules and dashboards query
    pm = docs[("PodMonitor", "churn-predictor")]["spec"]["podMetricsEndpoints"][0]
    assert pm["relabelings"] == [{"targetLabel": "job", "replacement": "churn-predictor"}]
    assert 'up{job="churn-predictor"}' in yaml.safe_dump(rules)
    assert docs[("ServiceMonitor", "churn-pushgateway")]["spec"]["endpoints"][0]["honorLabels"] is True


def test_the_chart_agrees_with_the_platform_declaration():
    """One default image and one pool name: the chart's values agree with churn/core/pipelines.yaml,
    which the DAGs, the Kubeflow components and the settings read."""
    from churn.core.pipeline import platform_defaults

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert f"{values['image']['repository']}:{values['image']['tag']}" == platform_defaults()["image"]
    assert chart["appVersion"] == values["image"]["tag"]
    assert values["airflow"]["lakeWritersPool"] == platform_defaults()["lake_writers_pool"]
    (job,) = [d for d in render() if d["kind"] == "Job" and d["metadata"]["name"] == "churn-airflow-pools"]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:5] == \
        ["airflow", "pools", "set", "churn_lake_writers", "1"]
