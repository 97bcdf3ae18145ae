#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The baseline: what a fleet owner would otherwise run in CI.

    bench/baseline_validate.py FLEETDIR [--schema-dir DIR] [--formats] [-q]

Loads every record of the fleet repository with PyYAML's libyaml loader
(yaml.CSafeLoader) and validates it with python3-jsonschema's
Draft202012Validator against the matching part of schema/fleet.schema.json:

    fleet.yaml (or fleet.yml)   the root schema
    nodes/*.yaml|yml            #/$defs/node
    relays/*.yaml|yml           #/$defs/relay
    users/*.yaml|yml            #/$defs/user

One validator per kind is built once, with a RefResolver whose store holds
every schema/*.json so that $refs resolve locally, and reused for all files.
Only the JSON Schema (shape) is checked: there are no cross-file checks.
Prints the number of files and errors; exits 1 on any error.

--formats also asserts "format" keywords (ipv4, email, ...) with
Draft202012Validator.FORMAT_CHECKER; by default, as in 2020-12, they are
annotations only.
"""

import argparse
import json
import os
import sys
import time

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
KINDS = (("nodes", "node"), ("relays", "relay"), ("users", "user"))
MAX_SHOWN = 20


def load_schemas(schema_dir):
    """Return (root schema, its base URI, store of every schema/*.json)."""
    root_path = os.path.join(schema_dir, "fleet.schema.json")
    store = {}
    root = base = None
    for fn in sorted(os.listdir(schema_dir)):
        if not fn.endswith(".json"):
            continue
        path = os.path.join(schema_dir, fn)
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        uri = "file://" + os.path.abspath(path)
        store[uri] = doc
        if isinstance(doc, dict) and isinstance(doc.get("$id"), str):
            store[doc["$id"].rstrip("#")] = doc
        if os.path.abspath(path) == os.path.abspath(root_path):
            root = doc
            base = doc.get("$id", uri).rstrip("#") if isinstance(doc, dict) else uri
    if root is None:
        sys.exit(f"baseline_validate: {root_path}: not found")
    return root, base, store


def build_validators(schema_dir, formats):
    root, base, store = load_schemas(schema_dir)
    cls = jsonschema.Draft202012Validator
    cls.check_schema(root)
    kw = {"format_checker": cls.FORMAT_CHECKER} if formats else {}
    validators = {"fleet": cls(root, resolver=jsonschema.RefResolver(base, root, store=store), **kw)}
    for _, kind in KINDS:
        if kind not in root.get("$defs", {}):
            sys.exit(f"baseline_validate: fleet.schema.json has no $defs/{kind}")
        ref = {"$ref": f"{base}#/$defs/{kind}"}
        resolver = jsonschema.RefResolver(base, root, store=store)
        validators[kind] = cls(ref, resolver=resolver, **kw)
    return validators


def fleet_files(fleetdir):
    """Yield (kind, path) for every record file, in a stable order."""
    for fn in ("fleet.yaml", "fleet.yml"):
        p = os.path.join(fleetdir, fn)
        if os.path.isfile(p):
            yield "fleet", p
            break
    else:
        yield "fleet", os.path.join(fleetdir, "fleet.yaml")   # reported missing
    for folder, kind in KINDS:
        d = os.path.join(fleetdir, folder)
        if not os.path.isdir(d):
            continue
        with os.scandir(d) as it:
            names = sorted(e.name for e in it if e.is_file() and e.name.endswith((".yaml", ".yml")))
        for fn in names:
            yield kind, os.path.join(d, fn)


def json_path(err):
    s = "$"
    for p in err.absolute_path:
        s += f"[{p}]" if isinstance(p, int) else f".{p}"
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fleetdir")
    ap.add_argument("--schema-dir", default=os.path.join(HERE, os.pardir, "schema"),
                    help="default: ../schema beside this script")
    ap.add_argument("--formats", action="store_true",
                    help="assert format keywords with FORMAT_CHECKER")
    ap.add_argument("-q", "--quiet", action="store_true", help="do not list errors")
    a = ap.parse_args()

    t0 = time.perf_counter()
    validators = build_validators(a.schema_dir, a.formats)
    loader = yaml.CSafeLoader
    files = errors = 0

    def report(path, msg):
        nonlocal errors
        errors += 1
        if not a.quiet and errors <= MAX_SHOWN:
            print(f"{os.path.relpath(path, a.fleetdir)}: {msg}")

    for kind, path in fleet_files(a.fleetdir):
        files += 1
        try:
            with open(path, "rb") as f:
                doc = yaml.load(f, Loader=loader)
        except (OSError, yaml.YAMLError) as e:
            report(path, str(e).replace("\n", " "))
            continue
        for err in validators[kind].iter_errors(doc):
            report(path, f"{json_path(err)}: {err.message}")

    if not a.quiet and errors > MAX_SHOWN:
        print(f"... and {errors - MAX_SHOWN} more")
    print(f"baseline_validate: {files} files, {errors} errors "
          f"({time.perf_counter() - t0:.2f} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
