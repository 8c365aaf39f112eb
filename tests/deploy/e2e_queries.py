#!/usr/bin/env python3
"""Evaluates every dashboard query through a running Prometheus' HTTP API and requires data.

Grafana's variables get the values a person would see with 'All' selected; $__rate_interval and
$__range become windows that fit a short run. A panel's range queries are evaluated as Grafana
does, over a time range (--start to now), and pass when any step has a value; instant queries
(tables) are evaluated now. Queries over series that cannot exist on this
machine (GPU metrics without a GPU) are listed with --may-be-empty and reported, not failed.
Usage: e2e_queries.py --repo DIR --prometheus http://127.0.0.1:PORT --start UNIX_SECONDS
                      [--may-be-empty METRIC...]
"""
import argparse
import json
import pathlib
import re
import sys
import time
import urllib.parse
import urllib.request

VARIABLE = re.compile(r"\$(?:\{([a-zA-Z_]\w*)(?::\w+)?\}|([a-zA-Z_]\w*))")
WINDOWS = {"__rate_interval": "30s", "__interval": "5s", "__range": "5m"}


def substitute(expr):
    return VARIABLE.sub(lambda m: WINDOWS.get(m.group(1) or m.group(2), ".*"), expr)


def query(base, expr, start=None):
    if start is None:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    else:
        url = f"{base}/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": expr, "start": f"{start:.3f}", "end": f"{time.time():.3f}", "step": "1"})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(body.get("error", "query failed"))
    return body["data"]["result"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, type=pathlib.Path)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--start", required=True, type=float)
    ap.add_argument("--may-be-empty", nargs="*", default=[])
    args = ap.parse_args()
    failed, empty_ok, total = [], [], 0
    for path in sorted((args.repo / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        for p in dash["panels"]:
            for t in p.get("targets", []):
                total += 1
                expr = substitute(t["expr"])
                where = f"{path.name} panel {p['id']} {p['title']!r}: {expr}"
                try:
                    result = query(args.prometheus, expr, None if t.get("instant") else args.start)
                except Exception as e:  # noqa: BLE001 - report and go on to the next query
                    failed.append(f"{where}: {e}")
                    continue
                if not result:
                    if any(m in expr for m in args.may_be_empty):
                        empty_ok.append(where)
                    else:
                        failed.append(f"{where}: no data")
    for w in empty_ok:
        print(f"empty (allowed on this machine): {w}")
    for f in failed:
        print(f, file=sys.stderr)
    if failed:
        print(f"FAILED: {len(failed)} of {total} dashboard queries", file=sys.stderr)
        return 1
    print(f"ok: {total - len(empty_ok)} of {total} dashboard queries returned data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
