#!/usr/bin/env python3
"""Project lints for Scion's dashboards and alert rules, beyond Grafana's schema:

  - panel ids unique; every panel inside the 24-column grid; no two panels overlap
  - every panel with queries, every query and every query variable uses the templated
    datasource ${datasource}; the dashboard declares the variables its queries use
  - every query is valid PromQL (promtool parses each one as a recording rule)
  - every scion_* metric a dashboard or alert uses is in docs/PROTOCOL.md's list
  - every such metric is registered in the daemons' sources (coordinator/, worker/: prometheus-cpp
    `.Name("scion_...")`), once those sources define any metric
  - with --exported FILE (a /metrics scrape of the running daemons), every such metric is exported

Usage: dashboard_lint.py --repo DIR [--promtool PATH] [--exported FILE]
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

METRIC = re.compile(r"\b(scion_[a-z0-9_]+)")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")
VARIABLE = re.compile(r"\$(?:\{([a-zA-Z_]\w*)(?::\w+)?\}|([a-zA-Z_]\w*))")
# Grafana's built-in variables, and the stand-ins used when handing a query to promtool.
BUILTIN = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600",
           "__interval_ms": "60000"}


def protocol_metrics(repo):
    text = (repo / "docs" / "PROTOCOL.md").read_text()
    section = text.split("## Prometheus metric names", 1)
    if len(section) != 2:
        sys.exit("docs/PROTOCOL.md: no '## Prometheus metric names' section")
    names = set(re.findall(r"`(scion_[a-z0-9_]+)", section[1]))
    if not names:
        sys.exit("docs/PROTOCOL.md: no metric names found")
    return names


def source_metrics(repo):
    """Metric names the daemons register with prometheus-cpp (`.Name("scion_...")`)."""
    names = set()
    for folder in ("coordinator", "worker"):
        for f in sorted((repo / folder).rglob("*.cc")) + sorted((repo / folder).rglob("*.h")):
            names.update(re.findall(r'\.Name\(\s*"(scion_[a-z0-9_]+)"', f.read_text(errors="replace")))
    return names


def base_metric(name, known):
    """scion_x_seconds_bucket -> scion_x_seconds when the histogram is known."""
    stripped = HISTOGRAM_SUFFIX.sub("", name)
    return stripped if stripped in known else name


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def lint_dashboard(path, known, problems, queries):
    dash = json.loads(path.read_text())
    where = path.name
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds_var = variables.get("datasource")
    if not ds_var or ds_var.get("type") != "datasource" or ds_var.get("query") != "prometheus":
        problems.append(f"{where}: needs a 'datasource' variable of type datasource for prometheus")

    def check_ds(ds, what):
        if not isinstance(ds, dict) or ds.get("uid") != "${datasource}" or ds.get("type") != "prometheus":
            problems.append(f"{where}: {what}: datasource must be {{type: prometheus, uid: ${{datasource}}}}, got {ds!r}")

    def check_vars(text, what):
        for m in VARIABLE.finditer(text):
            name = m.group(1) or m.group(2)
            if name not in variables and name not in BUILTIN:
                problems.append(f"{where}: {what}: uses ${name}, which the dashboard does not define")

    for name, var in variables.items():
        if var.get("type") == "query":
            check_ds(var.get("datasource"), f"variable {name}")
            q = var.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q.strip())
            if not m:
                problems.append(f"{where}: variable {name}: query must be label_values(SELECTOR, LABEL), got {q!r}")
            else:
                queries.append((f"{where}: variable {name}", m.group(1)))

    ids, cells = set(), {}
    for p in all_panels(dash):
        pid, title = p.get("id"), p.get("title", "")
        what = f"panel {pid} {title!r}"
        if pid in ids:
            problems.append(f"{where}: {what}: duplicate panel id")
        ids.add(pid)
        g = p.get("gridPos", {})
        x, y, w, h = g.get("x", -1), g.get("y", -1), g.get("w", 0), g.get("h", 0)
        if x < 0 or y < 0 or w <= 0 or h <= 0 or x + w > 24:
            problems.append(f"{where}: {what}: gridPos {g} outside the 24-column grid")
        for cx in range(max(x, 0), min(x + w, 24)):
            for cy in range(max(y, 0), max(y, 0) + h):
                if (cx, cy) in cells:
                    problems.append(f"{where}: {what}: overlaps panel {cells[(cx, cy)]}")
                    break
                cells[(cx, cy)] = pid
            else:
                continue
            break
        targets = p.get("targets", [])
        if targets or "datasource" in p:
            check_ds(p.get("datasource", p.get("targets", [{}])[0].get("datasource")), what)
        if p.get("type") not in ("row", "text") and not targets:
            problems.append(f"{where}: {what}: has no queries")
        ref_ids = [t.get("refId") for t in targets]
        if None in ref_ids or len(set(ref_ids)) != len(ref_ids):
            problems.append(f"{where}: {what}: every query needs a refId, unique within its panel, got {ref_ids}")
        for i, t in enumerate(targets):
            check_ds(t.get("datasource"), f"{what} query {i}")
            expr = t.get("expr", "")
            if not expr:
                problems.append(f"{where}: {what} query {i}: empty expr")
            check_vars(expr, f"{what} query {i}")
            queries.append((f"{where}: {what} query {i}", expr))


def substitute(expr):
    """A Grafana query with its variables replaced so that promtool can parse it."""
    def repl(m):
        name = m.group(1) or m.group(2)
        return BUILTIN.get(name, ".*")
    return VARIABLE.sub(repl, expr)


def check_promql(promtool, queries, problems):
    if not queries:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for where, expr in queries:
            rule = {"groups": [{"name": "lint", "rules": [{"record": "lint:query", "expr": substitute(expr)}]}]}
            f = pathlib.Path(tmp) / "q.yml"
            f.write_text(json.dumps(rule))  # JSON is YAML
            r = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
            if r.returncode != 0:
                detail = " ".join((r.stdout + r.stderr).split())
                problems.append(f"{where}: invalid PromQL {expr!r}: {detail}")


def rule_exprs(repo):
    out = []
    for f in sorted((repo / "deploy" / "prometheus" / "rules").glob("*.yml")):
        if f.name.endswith(".test.yml"):
            continue
        for m in re.finditer(r"^\s+expr:\s*(?:>\s*\n)?((?:.*\n)*?)(?=^\s+(?:for|labels|annotations|record|alert):)",
                             f.read_text(), re.M):
            out.append((f"{f.name}", m.group(1)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repo", required=True, type=pathlib.Path)
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("--exported", type=pathlib.Path, help="a /metrics scrape of the running daemons")
    args = ap.parse_args()

    known = protocol_metrics(args.repo)
    problems, queries = [], []
    dashboards = sorted((args.repo / "dashboards").glob("*.json"))
    if not dashboards:
        problems.append("dashboards/: no dashboards found")
    for path in dashboards:
        lint_dashboard(path, known, problems, queries)
    check_promql(args.promtool, queries, problems)

    used = {}
    for where, expr in queries + rule_exprs(args.repo):
        for name in METRIC.findall(expr):
            used.setdefault(base_metric(name, known), where)
    for name, where in sorted(used.items()):
        if name not in known:
            problems.append(f"{where}: metric {name} is not in docs/PROTOCOL.md's list")
    registered = source_metrics(args.repo)
    if registered:
        for name, where in sorted(used.items()):
            if name in known and name not in registered:
                problems.append(f"{where}: metric {name} is not registered in coordinator/ or worker/ sources")
    else:
        print("note: the daemons' sources register no metrics yet; registration not checked")
    if args.exported:
        exported = {base_metric(n, known) for n in re.findall(r"^# TYPE (scion_\w+)", args.exported.read_text(), re.M)}
        for name, where in sorted(used.items()):
            if name in known and name not in exported:
                problems.append(f"{where}: metric {name} is not exported by the running daemons")

    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"FAILED: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(dashboards)} dashboards, {len(queries)} queries, {len(used)} metrics checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
