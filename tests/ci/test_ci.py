"""CI/CD files, offline: the Jenkinsfile linted by npm-groovy-lint (CodeNarc on the local Java), the Argo
CD ApplicationSet and every Application it generates validated against the upstream CRD schemas, and
both pointing at files and stages that exist."""

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.support import k8s

CI = ROOT / "ci"


def groovy_lint(path: Path) -> subprocess.Popen:
    binary = os.environ.get("CHURN_GROOVY_LINT") or str(
        Path.home() / ".cache/churn-platform/tools/npm-groovy-lint-15.2.2/node_modules/.bin/npm-groovy-lint")
    if not Path(binary).exists():
        pytest.fail(f"npm-groovy-lint not found at {binary}: run `make test-tools` (or set CHURN_GROOVY_LINT)")
    return subprocess.Popen([binary, "--noserver", "--output", "json", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def lint_report(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=180)
    assert "{" in out, err[-2000:]
    return json.loads(out[out.index("{"):])


def test_the_jenkinsfile_passes_npm_groovy_lint():
    report = lint_report(groovy_lint(CI / "Jenkinsfile"))
    found = [(e["severity"], e["rule"], f"{e.get('line')}: {e['msg']}") for f in report["files"].values() for e in f["errors"]]
    assert [f for f in found if f[0] in ("error", "warning")] == []
    # the linter parsed the file and ran its rules over it: its info-level findings are there
    assert report["summary"]["totalFilesLinted"] == 1 and report["summary"]["detectedRules"]
    assert "NglParseError" not in report["summary"]["detectedRules"]


def test_the_jenkinsfile_runs_on_kubernetes_agents_and_goes_from_lint_to_gitops():
    text = (CI / "Jenkinsfile").read_text()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Lint", "Fast tests", "Full tests", "Images", "Chart", "Deploy to dev"]
    pod = yaml.safe_load(re.search(r"yaml '''\n(.*?)'''", text, re.S).group(1))
    assert k8s.validate(pod) == "kubernetes-validate"
    for c in pod["spec"]["containers"]:
        assert c["resources"]["requests"] and not c["image"].endswith(":latest") and ":" in c["image"], c["name"]
    assert "/kaniko/executor" in text and "docker/platform.Dockerfile" in text and "docker/airflow.Dockerfile" in text
    assert "helm package helm/churn-platform" in text and "helm push" in text
    assert 'ci/deploy_tag.py --env dev --tag "$TAG"' in text  # the GitOps step (checked below)
    for target in re.findall(r"make ([\w-]+)", text):
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.M), target
    assert "password" not in text.lower() or "--password-stdin" in text  # credentials come from Jenkins only


def generated_applications(appset: dict) -> list[dict]:
    """The Applications Argo CD generates from the list generator: the Go template's {{ .key }}
    fields filled in, and templatePatch applied where its condition holds."""
    (gen,) = appset["spec"]["generators"]
    apps = []
    for element in gen["list"]["elements"]:
        text = json.dumps(appset["spec"]["template"])
        for key, value in element.items():
            text = text.replace("{{ .%s }}" % key, str(value))
        assert "{{" not in text, text
        app = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", **json.loads(text)}
        patch = appset["spec"]["templatePatch"]
        condition = re.match(r"\{\{- if \.(\w+) \}\}", patch.strip()).group(1)
        if element[condition]:
            body = yaml.safe_load("\n".join(line for line in patch.splitlines() if "{{" not in line))
            app = copy.deepcopy(app)
            app["spec"]["syncPolicy"].update(body["spec"]["syncPolicy"])
        apps.append(app)
    return apps


def test_the_applicationset_and_its_applications_match_the_argo_cd_schemas():
    appset = yaml.safe_load((CI / "argocd" / "applicationset.yaml").read_text())
    assert k8s.validate(appset) == "argoproj.io/applicationset_v1alpha1.json"
    apps = {a["metadata"]["name"]: a for a in generated_applications(appset)}
    assert set(apps) == {"churn-platform-dev", "churn-platform-staging", "churn-platform-prod"}
    for name, app in apps.items():
        assert k8s.validate(app) == "argoproj.io/application_v1alpha1.json", name
        env = name.rsplit("-", 1)[1]
        platform, airflow, ref = app["spec"]["sources"]
        for f in platform["helm"]["valueFiles"]:  # the chart's values of that environment exist
            assert (ROOT / platform["path"] / f).is_file(), f
        assert f"values-{env}.yaml" in platform["helm"]["valueFiles"]
        assert airflow["chart"] == "airflow" and ref["ref"] == "platform"
        for f in [*airflow["helm"]["valueFiles"], *(p["path"] for p in airflow["helm"]["fileParameters"])]:
            assert (ROOT / f.replace("$platform/", "")).is_file(), f
        assert f"$platform/helm/airflow/values-{env}.yaml" in airflow["helm"]["valueFiles"]
        # dev and staging sync on their own (pruning, healing drift); prod waits for an operator
        assert ("automated" in app["spec"]["syncPolicy"]) == (env != "prod"), name
    broken = copy.deepcopy(appset)
    broken["spec"]["template"]["spec"]["syncPolicy"]["automatic"] = True
    with pytest.raises(AssertionError, match="automatic"):
        k8s.validate(broken)


def test_deploy_tag_sets_one_release_where_both_charts_read_it(tmp_path):
    """ci/deploy_tag.py on a copy of helm/: only the tag lines change, and both charts render the new
    images (the platform's everywhere, the Airflow image in the pool job and in the Airflow values)."""
    import shutil

    from tests.support.chart import helm

    shutil.copytree(ROOT / "helm", tmp_path / "helm")
    before = {p: p.read_text() for p in (tmp_path / "helm").rglob("values-*.yaml")}
    out = subprocess.run([sys.executable, str(CI / "deploy_tag.py"), "--env", "staging", "--tag", "release-7",
                          "--root", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    changed = {p for p, text in before.items() if p.read_text() != text}
    assert {p.relative_to(tmp_path).as_posix() for p in changed} == {
        "helm/churn-platform/values-staging.yaml", "helm/airflow/values-staging.yaml"}
    for p in changed:  # only the tag lines differ
        diff = [(a, b) for a, b in zip(before[p].splitlines(), p.read_text().splitlines()) if a != b]
        assert diff and all(b.strip() == 'tag: "release-7"' for _, b in diff), diff
    chart = tmp_path / "helm" / "churn-platform"
    rendered = helm("template", "churn", str(chart), "-f", str(chart / "values-staging.yaml"))
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    images = {c["image"] for d in docs for _, spec in k8s.pod_specs(d) for c in spec["containers"]}
    assert {"ghcr.io/churn-platform/platform:release-7", "ghcr.io/churn-platform/airflow:release-7"} <= images
    assert not {i for i in images if i.startswith("ghcr.io/churn-platform/") and not i.endswith(":release-7")}
    airflow = yaml.safe_load((tmp_path / "helm" / "airflow" / "values-staging.yaml").read_text())
    assert airflow["images"]["airflow"]["tag"] == "release-7"
    for bad in (["--env", "qa", "--tag", "x1"], ["--env", "dev", "--tag", "latest"], ["--env", "dev", "--tag", "a b"]):
        out = subprocess.run([sys.executable, str(CI / "deploy_tag.py"), *bad, "--root", str(tmp_path)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and ("--env" in out.stderr or "--tag" in out.stderr), (bad, out.stderr)
