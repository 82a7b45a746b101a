#!/usr/bin/env python3
"""Validates sfdx-project.json and the scratch org definition against Salesforce's published JSON schemas.

usage: check_project_schema.py <schemas-dir> [package-root]
  schemas-dir: the unpacked npm package @salesforce/schemas (sfdx-project.schema.json,
  project-scratch-def.schema.json). Needs the `jsonschema` module (CI's tool venv has it).

Why: the sf CLI reads these files only when someone deploys, packages or creates a scratch org; a
misspelt key (versionNumbr, orderSetings) would surface there, not in review.
"""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    schemas = pathlib.Path(sys.argv[1])
    root = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else pathlib.Path(__file__).resolve().parent.parent
    project = json.loads((root / "sfdx-project.json").read_text(encoding="utf-8"))
    pairs = [("sfdx-project.schema.json", root / "sfdx-project.json")]
    for d in project.get("packageDirectories", []):
        if d.get("definitionFile"):
            pairs.append(("project-scratch-def.schema.json", root / d["definitionFile"]))
    problems = 0
    for schema_name, doc_path in pairs:
        schema = json.loads((schemas / schema_name).read_text(encoding="utf-8"))
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
        validator = jsonschema.validators.validator_for(schema)(schema)
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
            problems += 1
            where = "/".join(str(p) for p in e.path) or "(root)"
            print(f"{doc_path.relative_to(root)}: {where}: {e.message}")
    print(f"sf-project-schema: {len(pairs)} files checked, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
