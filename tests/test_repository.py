"""The repository stands alone: a user's clone has nothing beside it, so no tracked file may reach
outside it, the data it ships is the data its README describes, and the README's prerequisites are
the ones `make setup` checks."""

import hashlib
import re
import subprocess

from tests.conftest import ROOT, TELCO

# spelled in two parts so that this file does not match its own check
OUTSIDE = ".." + "/shared"


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_tracked_file_refers_to_a_folder_beside_the_clone():
    offenders = []
    for rel in tracked_files():
        path = ROOT / rel
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        offenders += [f"{rel}:{n}" for n, line in enumerate(text.splitlines(), 1) if OUTSIDE in line]
    assert not offenders, f"files that read outside the repository: {offenders}"


def test_the_shipped_telco_sample_is_the_one_its_readme_names():
    readme = (TELCO.parent / "README.md").read_text()
    (digest,) = re.findall(r"sha256 `([0-9a-f]{64})`", readme)
    assert hashlib.sha256(TELCO.read_bytes()).hexdigest() == digest
    spec = (ROOT / "local" / "specs" / "telco.yaml").read_text()
    assert "source: ../data/telco_customer_churn.csv" in spec


def test_readme_names_every_prerequisite_the_check_requires():
    check = (ROOT / "local" / "check-prereqs.sh").read_text()
    required = set(re.findall(r"prerequisite missing: ([A-Za-z]+)", check)) | \
        set(re.findall(r"for tool in ([a-z ]+); do", check)[0].split())
    required.discard("tool")  # the loop variable's message
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Prerequisites**", 1)[1].split("* **", 1)[0]
    missing = [t for t in sorted(required) if t.lower() not in section.lower()]
    assert not missing, f"README's prerequisites do not name {missing}; local/check-prereqs.sh requires them"


def test_no_tracked_file_holds_a_secret(tmp_path):
    """detect-secrets' default plugins over every tracked file (the Telco sample is left out: its
    bytes are pinned by checksum above; so are the upstream CRD schemas, 5 MB of JSON copied unchanged
    with their provenance in tests/support/k8s_schemas/README.md). A known-fake credential in a test or doc carries the tool's
    own `pragma: allowlist secret` marker on its line, so each exception is visible where it is."""
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    planted = tmp_path / "planted.env"
    # spelled in parts so that this file does not match its own scan
    planted.write_text("CHURN_S3_ACCESS_KEY=" + "AKIA" + "QX7PLANTEDKEY123\n"
                       "CHURN_PG_URL=postgresql://crm:" + "Kx8vQ2mZr7Lp@db:5432/churn\n")
    with default_settings():
        probe = SecretsCollection()
        probe.scan_file(str(planted))
        kinds = {secret.type for _, secret in probe}
        assert {"AWS Access Key", "Basic Auth Credentials"} <= kinds, f"the scanner missed planted secrets: {kinds}"
        found = SecretsCollection(root=str(ROOT))
        for rel in tracked_files():
            if (ROOT / rel).is_file() and ROOT / rel != TELCO and not (
                    rel.startswith("tests/support/k8s_schemas/") and rel.endswith(".json")):
                found.scan_file(rel)
    offenders = [f"{name}:{secret.line_number} ({secret.type})" for name, secret in found]
    assert not offenders, f"possible secrets in tracked files (remove them, or mark a fake one): {offenders}"
