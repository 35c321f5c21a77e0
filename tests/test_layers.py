"""The layering of the code base (.importlinter): the base imports nothing above it, the lakehouse
jobs, publishing and the simulator sit above ML, the command line on top, and product code never
imports test support. Checked with import-linter over every import, lazy ones included."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

LINT = Path(sys.executable).with_name("lint-imports")


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_layering_contract_is_kept():
    r = lint()
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "4 kept, 0 broken" in r.stdout


def test_the_checker_sees_an_upward_import(tmp_path):
    """The contracts are not vacuous: a contract the code breaks on purpose (ML imports the base) is
    reported broken, naming the import."""
    config = tmp_path / "contracts.ini"
    config.write_text((ROOT / ".importlinter").read_text().split("[importlinter:contract:")[0] + """
[importlinter:contract:upside-down]
name = upside down
type = layers
layers =
    churn.core
    ml
""")
    r = lint(str(config))
    assert r.returncode != 0 and "upside down BROKEN" in r.stdout, r.stdout[-3000:]
    assert "ml." in r.stdout and "-> churn.core" in r.stdout
