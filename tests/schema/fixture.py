#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Split a one-file test fixture into the fleet repository it describes.

A fixture (tests/schema/good/NAME.yaml, tests/schema/bad/NAME.yaml) holds a whole fleet
repository in one file. A line of exactly the form

    # file: <relative path>

starts a new file, and that marker line stays as line 1 of the file it starts, so the line
numbers in a diagnostic (path:line:col) count from the marker. The file runs up to the next
marker or the end of the fixture. Lines before the first marker are the fixture's preamble
(the SPDX line and a comment saying what the fixture tests); they belong to no file and may
hold only comments and blank lines.

The split works on bytes, so a fixture can carry invalid UTF-8, tabs or CRLF line ends to test
the loader. A path must be relative, use '/' separators, and have no '', '.' or '..'
component; a path may appear only once.

As a module: split(data) -> [(path, bytes)], split_file(path), write_tree(files, outdir).
As a command: fixture.py split FIXTURE OUTDIR   (exit 0 done, 1 bad fixture, 2 usage)
              fixture.py list FIXTURE           (prints each file's path)
"""

import os
import re
import sys

MARKER = re.compile(rb"^# file: ?(.*?)[ \t]*\r?$")
PREFIX = b"# file:"


class FixtureError(Exception):
    """The fixture is malformed; the message names the fixture line."""


def check_path(path):
    """Return path if it is a safe relative path, else raise FixtureError."""
    if path == "":
        raise FixtureError("empty path")
    if path.startswith("/") or "\\" in path or re.match(r"^[A-Za-z]:", path):
        raise FixtureError(f"'{path}': path must be relative and use '/'")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise FixtureError(f"'{path}': path may not contain empty, '.' or '..' components")
    return path


def split(data, name="<fixture>"):
    """Split fixture bytes into an ordered list of (relative path, bytes)."""
    files = []
    seen = {}
    cur = None
    # Split at b"\n" only, keeping the line ends, so every byte (CR too) reaches its file as is.
    lines = data.split(b"\n")
    lines = [l + b"\n" for l in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    for lineno, line in enumerate(lines, 1):
        if line.startswith(PREFIX):
            m = MARKER.match(line.rstrip(b"\n"))
            try:
                path = m.group(1).decode("utf-8") if m else ""
                check_path(path)
            except (UnicodeDecodeError, FixtureError) as e:
                raise FixtureError(f"{name}:{lineno}: bad file marker: {e}") from None
            if path in seen:
                raise FixtureError(f"{name}:{lineno}: '{path}' already started at line {seen[path]}")
            seen[path] = lineno
            cur = [path, bytearray()]
            files.append(cur)
        elif cur is None:
            s = line.strip()
            if s and not s.startswith(b"#"):
                raise FixtureError(f"{name}:{lineno}: content before the first '# file:' marker")
            continue
        cur[1] += line
    if not files:
        raise FixtureError(f"{name}: no '# file: <path>' marker")
    # A file path may not also be a folder of another file.
    for path, _ in files:
        for other, _ in files:
            if other.startswith(path + "/"):
                raise FixtureError(f"{name}: '{path}' is both a file and a folder")
    return [(p, bytes(b)) for p, b in files]


def split_file(path):
    """Read and split the fixture at path."""
    with open(path, "rb") as f:
        return split(f.read(), path)


def write_tree(files, outdir):
    """Write (path, bytes) pairs under outdir, creating folders as needed."""
    root = os.path.realpath(outdir)
    for rel, data in files:
        check_path(rel)
        dest = os.path.join(root, *rel.split("/"))
        # Refuse to write through a symlink that leads out of outdir.
        parent = os.path.realpath(os.path.dirname(dest))
        if parent != root and not parent.startswith(root + os.sep):
            raise FixtureError(f"'{rel}' leaves the output folder")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(data)


def main(argv):
    usage = "usage: fixture.py split FIXTURE OUTDIR | fixture.py list FIXTURE"
    if len(argv) == 3 and argv[0] == "split":
        cmd = "split"
    elif len(argv) == 2 and argv[0] == "list":
        cmd = "list"
    else:
        print(usage, file=sys.stderr)
        return 2
    try:
        files = split_file(argv[1])
        if cmd == "list":
            for rel, _ in files:
                print(rel)
        else:
            write_tree(files, argv[2])
    except FixtureError as e:
        print(f"fixture.py: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"fixture.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
