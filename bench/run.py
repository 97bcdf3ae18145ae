#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A small benchmark runner: wall time and peak RSS of a command.

Measure a command (one table row; append the raw numbers to a JSONL file):

    bench/run.py [--runs 10] [--warmup 0] [--name NAME] [--out FILE.jsonl]
                 [--ok-rc 0] -- CMD [ARG ...]

Print a table of several measurements and check targets against them:

    bench/run.py --report FILE.jsonl [--ratio-base NAME]
                 [--max-median NAME=SECONDS ...] [--max-rss NAME=MIB ...]
                 [--min-speedup NAME=X ...]

Each run is timed with time.perf_counter() around fork/exec/wait, and its peak
resident set size is ru_maxrss from os.wait4() (KiB on Linux; it covers the
child and any descendants it waited for).  Linux carries the high-water mark
of the address space a process was forked from across exec, so a child can
never read below this runner's own peak RSS (~10-13 MiB): such a reading is
shown as "<=N", an upper bound.  A run whose exit status is not in
--ok-rc stops the measurement and makes it fail: a benchmark of a command that
fails is meaningless.  The speedup column is ratio-base's median / the row's
median.  Exit status: 1 if a measurement failed or a target is missed.

As a module: measure(cmd, runs) -> dict, and table(results, base) -> str.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def _run_once(cmd, env, out):
    out.seek(0)
    out.truncate()
    # The child's ru_maxrss includes the high-water mark of the address space
    # it was forked from (this runner's, kept across exec): a reading at or
    # below this floor only says the child itself used no more than that.
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                         stdout=out, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss, p.returncode, floor


def _tail(out, lines=3):
    out.seek(0)
    text = out.read().decode("utf-8", "replace").rstrip("\n")
    return text.split("\n")[-lines:] if text else []


def measure(cmd, runs=10, warmup=0, name=None, env=None, ok_rc=(0,), log=sys.stderr):
    """Run cmd warmup + runs times; return a dict of the timed runs."""
    res = {"name": name or os.path.basename(cmd[0]), "cmd": list(cmd),
           "runs": 0, "warmup": warmup, "wall_s": [], "rss_kib": [], "rss_floor_kib": 0,
           "rc": 0, "ok": True, "output": []}
    with tempfile.TemporaryFile() as out:
        for i in range(warmup + runs):
            wall, rss, rc, floor = _run_once(cmd, env, out)
            res["rss_floor_kib"] = max(res["rss_floor_kib"], floor)
            if rc not in ok_rc:
                res.update(rc=rc, ok=False, output=_tail(out, 20))
                if log:
                    print(f"run.py: {res['name']}: exit status {rc} "
                          f"(run {i + 1}): {' '.join(cmd)}", file=log)
                    for line in res["output"]:
                        print(f"  | {line}", file=log)
                break
            if i >= warmup:
                res["wall_s"].append(wall)
                res["rss_kib"].append(rss)
                res["runs"] += 1
            if i == warmup:
                res["output"] = _tail(out)
    return res


def summary(res):
    w = res["wall_s"]
    if not w:
        return None
    rss = max(res["rss_kib"])
    return {"median": statistics.median(w), "min": min(w), "max": max(w),
            "rss_mib": rss / 1024, "rss_is_floor": rss <= res.get("rss_floor_kib", 0)}


def table(results, base=None):
    """A text table; base names the row whose median the speedups divide."""
    by = {r["name"]: r for r in results}
    bmed = None
    if base in by and summary(by[base]):
        bmed = summary(by[base])["median"]
    head = ("name", "runs", "median s", "min s", "max s", "peak RSS MiB",
            f"{base}/x" if base else "speedup")
    rows = []
    for r in results:
        s = summary(r)
        if s is None:
            rows.append((r["name"], str(r["runs"]), "FAILED", "", "",
                         "", f"rc {r['rc']}"))
            continue
        ratio = f"{bmed / s['median']:.1f}x" if bmed and s["median"] > 0 else "-"
        rows.append((r["name"], str(r["runs"]), f"{s['median']:.3f}",
                     f"{s['min']:.3f}", f"{s['max']:.3f}",
                     ("<=" if s["rss_is_floor"] else "") + f"{s['rss_mib']:.1f}", ratio))
    widths = [max(len(x[i]) for x in (head, *rows)) for i in range(len(head))]
    fmt = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                for i, (c, w) in enumerate(zip(row, widths)))
    lines = [fmt(head), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows]
    return "\n".join(lines)


def _pairs(items, flag):
    out = []
    for it in items or ():
        name, sep, val = it.rpartition("=")
        if not sep or not name:
            sys.exit(f"run.py: {flag} wants NAME=VALUE, got {it!r}")
        out.append((name, float(val)))
    return out


def check(results, base, max_median, max_rss, min_speedup, out=sys.stdout):
    """Print PASS/FAIL/SKIP per target; return True if none failed."""
    by = {r["name"]: r for r in results}
    ok = True

    def verdict(passed, text):
        nonlocal ok
        if passed is None:
            tag = "SKIP"
        elif passed:
            tag = "PASS"
        else:
            tag, ok = "FAIL", False
        print(f"{tag}  {text}", file=out)

    for r in results:
        if not r["ok"]:
            verdict(False, f"{r['name']} ran without error (exit status {r['rc']})")
    bs = summary(by[base]) if base in by else None
    for name, lim in max_median:
        s = summary(by[name]) if name in by else None
        verdict(None if s is None else s["median"] <= lim,
                f"{name} median wall {s['median']:.3f} s <= {lim:g} s" if s
                else f"{name} median wall <= {lim:g} s (no measurement)")
    for name, lim in max_rss:
        s = summary(by[name]) if name in by else None
        verdict(None if s is None else s["rss_mib"] <= lim,
                f"{name} peak RSS {'<=' if s['rss_is_floor'] else ''}{s['rss_mib']:.1f} MiB"
                f" <= {lim:g} MiB" if s
                else f"{name} peak RSS <= {lim:g} MiB (no measurement)")
    for name, lim in min_speedup:
        s = summary(by[name]) if name in by else None
        if s is None or bs is None or s["median"] <= 0:
            verdict(None, f"{name} >= {lim:g}x faster than {base} (no measurement)")
        else:
            x = bs["median"] / s["median"]
            verdict(x >= lim, f"{name} {x:.1f}x faster than {base} (>= {lim:g}x)")
    return ok


def main():
    argv = sys.argv[1:]
    cmd = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(
        usage="%(prog)s [options] -- CMD ...  |  %(prog)s --report FILE [checks]",
        description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--name")
    ap.add_argument("--out", help="append the measurement to this JSONL file")
    ap.add_argument("--ok-rc", default="0", help="comma-separated exit statuses that count as success")
    ap.add_argument("--report", metavar="FILE", help="print a table of the measurements in FILE")
    ap.add_argument("--ratio-base", metavar="NAME")
    ap.add_argument("--max-median", action="append", metavar="NAME=S")
    ap.add_argument("--max-rss", action="append", metavar="NAME=MIB")
    ap.add_argument("--min-speedup", action="append", metavar="NAME=X")
    a = ap.parse_args(argv)

    if a.report:
        with open(a.report) as f:
            results = [json.loads(line) for line in f if line.strip()]
        print(table(results, a.ratio_base))
        print()
        ok = check(results, a.ratio_base, _pairs(a.max_median, "--max-median"),
                   _pairs(a.max_rss, "--max-rss"), _pairs(a.min_speedup, "--min-speedup"))
        return 0 if ok and all(r["ok"] for r in results) else 1

    if not cmd:
        ap.error("no command given (put it after --)")
    if a.runs < 1 or a.warmup < 0:
        ap.error("--runs must be >= 1 and --warmup >= 0")
    ok_rc = tuple(int(x) for x in a.ok_rc.split(","))
    res = measure(cmd, a.runs, a.warmup, a.name, ok_rc=ok_rc)
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(res) + "\n")
    for line in res["output"] if res["ok"] else ():
        print(f"  {res['name']} | {line}")
    print(table([res]))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
