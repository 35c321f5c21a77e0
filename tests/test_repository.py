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
