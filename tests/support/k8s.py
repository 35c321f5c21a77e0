"""Offline validation of rendered Kubernetes documents: core kinds strictly with the
`kubernetes-validate` package, custom resources against their upstream CRD schemas
(tests/support/k8s_schemas, with their provenance), and the platform's workload policy."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate

SCHEMAS = Path(__file__).with_name("k8s_schemas")
#: the Kubernetes version the core kinds are checked against
KUBERNETES = "1.33.0"
#: apiVersion, kind -> schema file of a custom resource
CUSTOM = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io/inferenceservice_v1beta1.json",
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"): "sparkoperator.k8s.io/sparkapplication_v1beta2.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com/podmonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com/prometheusrule_v1.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "postgresql.cnpg.io/cluster_v1.json",
    ("argoproj.io/v1alpha1", "ApplicationSet"): "argoproj.io/applicationset_v1alpha1.json",
    ("argoproj.io/v1alpha1", "Application"): "argoproj.io/application_v1alpha1.json",
}
#: kinds whose pods run for good (they need probes); Jobs and SparkApplications finish
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "InferenceService"}


@cache
def crd_schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def validate(doc: dict) -> str:
    """Validate one document; returns how ("kubernetes-validate" or the schema file). Raises
    AssertionError naming the document and the field on the first error."""
    where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in CUSTOM:
        errors = sorted(jsonschema.Draft7Validator(crd_schema(CUSTOM[key])).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{where}: {'.'.join(map(str, errors[0].path))}: {errors[0].message}"
        return CUSTOM[key]
    if key == ("security.istio.io/v1", "AuthorizationPolicy"):
        check_authorization_policy(doc)
        return "istio fields"
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}") from None
    except kubernetes_validate.SchemaNotFoundError:
        raise AssertionError(f"{where}: no schema for {key} (neither core Kubernetes nor a known CRD)") from None
    return "kubernetes-validate"


def check_authorization_policy(doc: dict) -> None:
    """Istio security.istio.io/v1 AuthorizationPolicy: the fields of its documented API."""
    spec = doc["spec"]
    assert set(spec) <= {"selector", "targetRef", "targetRefs", "action", "provider", "rules"}, spec.keys()
    assert spec.get("action", "ALLOW") in {"ALLOW", "DENY", "AUDIT", "CUSTOM"}
    for rule in spec.get("rules", []):
        assert set(rule) <= {"from", "to", "when"}, rule.keys()
        for f in rule.get("from", []):
            assert set(f) == {"source"} and set(f["source"]) <= {
                "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals", "namespaces",
                "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"}, f
        for t in rule.get("to", []):
            assert set(t) == {"operation"} and set(t["operation"]) <= {
                "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths"}, t


def pod_specs(doc: dict) -> list[tuple[str, dict]]:
    """The pod specs a document runs: (where, spec)."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    spec = doc.get("spec") or {}
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return [(f"{kind}/{name}", spec["template"]["spec"])]
    if kind == "CronJob":
        return [(f"{kind}/{name}", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind == "Pod":
        return [(f"Pod/{name}", spec)]
    if kind == "InferenceService":
        return [(f"{kind}/{name}", spec["predictor"])]
    return []


def check_workload_policy(doc: dict) -> list[str]:
    """The platform's rules for every workload; returns what it checked (for the closing table).
    Non-root, resources on every container, probes on long-running ones, no `latest` or untagged image."""
    checked = []
    for where, spec in pod_specs(doc):
        pod_sc = spec.get("securityContext") or {}
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            at = f"{where} container {c['name']}"
            sc = c.get("securityContext") or {}
            assert pod_sc.get("runAsNonRoot") or sc.get("runAsNonRoot"), f"{at}: runAsNonRoot is not set"
            assert (sc.get("runAsUser", pod_sc.get("runAsUser")) or 0) != 0, f"{at}: runs as uid 0"
            assert sc.get("allowPrivilegeEscalation") is False, f"{at}: allowPrivilegeEscalation is not false"
            assert not sc.get("privileged"), f"{at}: privileged"
            res = c.get("resources") or {}
            assert res.get("requests", {}).get("cpu") and res.get("requests", {}).get("memory"), f"{at}: no cpu/memory requests"
            assert res.get("limits", {}).get("memory"), f"{at}: no memory limit"
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1]
            assert ":" in tag or "@sha256:" in image, f"{at}: image {image!r} has no tag"
            assert not tag.endswith(":latest"), f"{at}: image {image!r} is latest"
            if doc["kind"] in LONG_RUNNING:
                assert c.get("readinessProbe") and c.get("livenessProbe"), f"{at}: a long-running container needs both probes"
            checked.append(at)
    return checked
