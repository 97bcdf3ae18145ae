#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Keep schema/*.schema.json honest against the fleet format (docs/DESIGN.md §2).

Run from anywhere as /usr/bin/python3 tests/schema/jsonschema_check.py (Debian's python3 with
python3-jsonschema and python3-yaml). It checks that
  - the four schemas are valid draft 2020-12 schemas;
  - every YAML file of fleet.example/ validates, and starts with the SPDX line and a
    yaml-language-server modeline naming the right schema;
  - every tests/schema/good/*.yaml fixture validates;
  - every tests/schema/bad/schema-*.yaml fixture is refused by at least one schema, so a
    structural error the C validator refuses is refused in editors too.
One line per check, `ok - NAME` or `not ok - NAME: REASON`; exit 1 if any check failed.
"""

import glob
import json
import os
import sys
import tempfile

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import fixture  # noqa: E402

KINDS = ("fleet", "node", "relay", "user")
FOLDERS = {"nodes": "node", "relays": "relay", "users": "user"}
MAXMSG = 240

results = []


def report(ok, name, reason=""):
    results.append(ok)
    print(f"ok - {name}" if ok else f"not ok - {name}: {reason}")


def load_validators():
    """One Draft202012Validator per kind, all resolving $refs from a local store only."""
    schemas = {}
    for kind in KINDS:
        rel = f"schema/{kind}.schema.json"
        try:
            with open(os.path.join(TOP, rel), encoding="utf-8") as f:
                schema = json.load(f)
            jsonschema.Draft202012Validator.check_schema(schema)
            if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
                raise ValueError("$schema is not draft 2020-12")
            if not str(schema.get("$id", "")).endswith(f"/{kind}.schema.json"):
                raise ValueError(f"$id does not end in /{kind}.schema.json")
        except (OSError, ValueError, jsonschema.SchemaError) as e:
            report(False, rel, short(e))
            continue
        schemas[kind] = schema
        report(True, rel)
    store = {s["$id"]: s for s in schemas.values()}
    validators = {}
    for kind, schema in schemas.items():
        # jsonschema 4.10 has no `referencing`; RefResolver with a store keeps every $ref
        # (e.g. node.schema.json -> fleet.schema.json#/$defs/node) off the network.
        # Nothing may be fetched: a $ref missing from the store fails instead of downloading.
        resolver = jsonschema.RefResolver(schema["$id"], schema, store=store,
                                          handlers={"http": _no_remote, "https": _no_remote})
        validators[kind] = jsonschema.Draft202012Validator(schema, resolver=resolver)
    return validators


def _no_remote(uri):
    raise jsonschema.RefResolutionError(f"$ref to {uri} is not in the local schema store")


def short(e):
    s = " ".join(str(getattr(e, "message", e)).split())
    return s if len(s) <= MAXMSG else s[:MAXMSG] + "..."


def pointer(path):
    return "/" + "/".join(str(p) for p in path)


def repo_files(root):
    """(relative path, kind) for each file the loader reads, as in DESIGN.md §2.1."""
    out = []
    if os.path.exists(os.path.join(root, "fleet.yaml")):
        out.append(("fleet.yaml", "fleet"))
    for folder, kind in FOLDERS.items():
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            continue
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isfile(p) and name.endswith((".yaml", ".yml")):
                out.append((f"{folder}/{name}", kind))
    return out


def load_yaml(path):
    with open(path, "rb") as f:
        return yaml.load(f, Loader=yaml.CSafeLoader)


def schema_errors(validators, kind, doc):
    errs = sorted(validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{pointer(e.absolute_path)}: {short(e)}" for e in errs]


def check_repo(validators, root):
    """Validate one fleet repository. Returns (yaml_errors, schema_errors), each 'file: why'."""
    yerrs, serrs = [], []
    files = repo_files(root)
    if not any(kind == "fleet" for _, kind in files):
        yerrs.append("fleet.yaml: missing")
    for rel, kind in files:
        try:
            doc = load_yaml(os.path.join(root, rel))
        except yaml.YAMLError as e:
            yerrs.append(f"{rel}: YAML: {short(e)}")
            continue
        serrs += [f"{rel}: {m}" for m in schema_errors(validators, kind, doc)]
    return yerrs, serrs


def check_example(validators):
    root = os.path.join(TOP, "fleet.example")
    files = repo_files(root)
    if not any(kind == "fleet" for _, kind in files):
        report(False, "fleet.example/fleet.yaml", "missing")
    for rel, kind in files:
        name = f"fleet.example/{rel}"
        path = os.path.join(root, rel)
        with open(path, encoding="utf-8") as f:
            head = f.read().splitlines()[:2]
        depth = rel.count("/") + 1
        want = [
            "# SPDX-License-Identifier: Apache-2.0",
            f"# yaml-language-server: $schema={'../' * depth}schema/{kind}.schema.json",
        ]
        if head != want:
            report(False, name, f"first two lines must be {want!r}")
            continue
        try:
            doc = load_yaml(path)
        except yaml.YAMLError as e:
            report(False, name, f"YAML: {short(e)}")
            continue
        errs = schema_errors(validators, kind, doc)
        report(not errs, name, "; ".join(errs))


def split_fixture(path, tmp):
    out = tempfile.mkdtemp(dir=tmp)
    fixture.write_tree(fixture.split_file(path), out)
    return out


def check_fixtures(validators, tmp):
    good = sorted(glob.glob(os.path.join(HERE, "good", "*.yaml")))
    bad = sorted(glob.glob(os.path.join(HERE, "bad", "schema-*.yaml")))
    if not good:
        report(False, "good fixtures", "none found")
    if not bad:
        report(False, "bad/schema-* fixtures", "none found")
    for path in good:
        name = os.path.relpath(path, HERE)
        try:
            yerrs, serrs = check_repo(validators, split_fixture(path, tmp))
        except fixture.FixtureError as e:
            report(False, name, short(e))
            continue
        errs = yerrs + serrs
        report(not errs, name, "; ".join(errs))
    for path in bad:
        name = os.path.relpath(path, HERE)
        try:
            yerrs, serrs = check_repo(validators, split_fixture(path, tmp))
        except fixture.FixtureError as e:
            report(False, name, short(e))
            continue
        if yerrs:
            # A schema-* fixture must reach the schema: unparsable YAML proves nothing.
            report(False, name, "not valid YAML, the schema is never reached: " + "; ".join(yerrs))
        elif not serrs:
            report(False, name, "the JSON Schema accepts it")
        else:
            report(True, f"{name} refused: {serrs[0]}")


def main():
    validators = load_validators()
    if len(validators) == len(KINDS):
        try:
            check_example(validators)
            with tempfile.TemporaryDirectory(prefix="pharos-schema-") as tmp:
                check_fixtures(validators, tmp)
        except jsonschema.RefResolutionError as e:
            # A broken $ref would make every later verdict meaningless: stop here.
            report(False, "schema $ref resolution", short(e))
    failed = results.count(False)
    print(f"# {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
