"""Set the release an environment runs: the platform and Airflow image tags of one build, in the
GitOps values Argo CD syncs (helm/churn-platform/values-<env>.yaml: image.tag and airflow.image.tag;
helm/airflow/values-<env>.yaml: images.airflow.tag). Jenkins runs it for dev after every green build
of main; a pull request running it for staging or prod is a promotion.

    python3 ci/deploy_tag.py --env dev --tag 3f2a9c1d0e4b

Only the tag lines change (comments and layout stay, so the commit's diff is the release); the
files are read back and must hold the tag where the charts read it. Standard library plus PyYAML.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "staging", "prod")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: file -> the key paths of the tags in it
FILES = {
    "helm/churn-platform/values-{env}.yaml": [["image", "tag"], ["airflow", "image", "tag"]],
    "helm/airflow/values-{env}.yaml": [["images", "airflow", "tag"]],
}


def get(doc: dict, path: list[str]):
    for key in path:
        doc = (doc or {}).get(key)
    return doc


def set_tag(root: Path, env: str, tag: str) -> list[Path]:
    if env not in ENVIRONMENTS:
        raise SystemExit(f"--env {env!r}: expected one of {', '.join(ENVIRONMENTS)}")
    if not TAG.match(tag) or tag == "latest":
        raise SystemExit(f"--tag {tag!r}: expected an image tag (letters, digits, _ . -; not latest)")
    changed = []
    for pattern, paths in FILES.items():
        path = root / pattern.format(env=env)
        text = path.read_text()
        lines = text.splitlines(keepends=True)
        for keys in paths:
            # the line `tag: ...` at the nesting of keys, below the line of its parent keys
            depth, found = 0, None
            for i, line in enumerate(lines):
                if line.strip().startswith("#") or not line.strip():
                    continue
                indent = len(line) - len(line.lstrip())
                if depth < len(keys) and indent == 2 * depth and line.strip().startswith(keys[depth] + ":"):
                    depth += 1
                    if depth == len(keys):
                        found = i
                        break
                elif indent < 2 * depth:
                    depth = indent // 2
            if found is None:
                raise SystemExit(f"{path}: no {'.'.join(keys)} line to set")
            lines[found] = re.sub(r"tag:.*", f'tag: "{tag}"', lines[found].rstrip("\n")) + "\n"
        path.write_text("".join(lines))
        doc = yaml.safe_load(path.read_text())
        for keys in paths:
            if get(doc, keys) != tag:
                raise SystemExit(f"{path}: {'.'.join(keys)} is {get(doc, keys)!r} after the edit, expected {tag!r}")
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    for path in set_tag(args.root, args.env, args.tag):
        print(f"{path.relative_to(args.root)}: {args.tag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
