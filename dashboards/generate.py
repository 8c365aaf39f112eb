#!/usr/bin/env python3
"""Writes Scion's Grafana dashboards (Grafana JSON model) into this folder.

The dashboards are code so that ids, grid positions, the templated datasource and the variables
stay consistent; the generated JSON is committed (Grafana provisions it as is) and a CTest check
fails when it drifts from this script. Run: python3 dashboards/generate.py [--check]
"""
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
COORD = 'job="scion-coordinator", instance=~"$instance"'  # coordinator series of the chosen instance
WORKER = 'worker=~"$worker"'                                # worker series of the chosen workers
SCHEMA_VERSION = 39


# ---- variables ------------------------------------------------------------------------------
def datasource_var():
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "hide": 0, "refresh": 1, "options": [], "regex": "", "skipUrlSync": False}


def query_var(name, label, query, multi):
    return {"name": name, "label": label, "type": "query", "datasource": DS, "query": query,
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": True,
            "allValue": ".*", "hide": 0, "options": [], "regex": "",
            "skipUrlSync": False}


INSTANCE_VAR = query_var("instance", "Coordinator", 'label_values(up{job="scion-coordinator"}, instance)', False)
WORKER_VAR = query_var("worker", "Worker", "label_values(scion_worker_running_jobs, worker)", True)
METRIC_VAR = query_var("metric", "Job metric", "label_values(scion_job_live_metric, name)", True)


# ---- panels ---------------------------------------------------------------------------------
def target(expr, legend="", instant=False, fmt="time_series"):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "range": not instant,
            "instant": instant, "format": fmt, "editorMode": "code"}


def field_defaults(unit, custom=None, minimum=None, maximum=None):
    d = {"unit": unit, "color": {"mode": "palette-classic"},
         "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}]}}
    if custom is not None:
        d["custom"] = custom
    if minimum is not None:
        d["min"] = minimum
    if maximum is not None:
        d["max"] = maximum
    return d


def legend():
    return {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []}


def timeseries(title, desc, targets, unit="short", stack=False, minimum=None, maximum=None):
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
              "spanNulls": False, "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    return {"type": "timeseries", "title": title, "description": desc, "targets": targets,
            "fieldConfig": {"defaults": field_defaults(unit, custom, minimum, maximum), "overrides": []},
            "options": {"legend": legend(), "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title, desc, targets, unit="short", red_above=None):
    defaults = field_defaults(unit)
    defaults["color"] = {"mode": "thresholds"}
    if red_above is not None:
        defaults["thresholds"]["steps"].append({"color": "red", "value": red_above})
    return {"type": "stat", "title": title, "description": desc, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "orientation": "auto", "textMode": "auto", "colorMode": "value",
                        "graphMode": "area", "justifyMode": "auto", "percentChangeColorMode": "standard",
                        "showPercentChange": False, "wideLayout": True}}


def bargauge(title, desc, targets, unit, minimum, maximum):
    defaults = field_defaults(unit, minimum=minimum, maximum=maximum)
    defaults["color"] = {"mode": "continuous-GrYlRd"}
    return {"type": "bargauge", "title": title, "description": desc, "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "orientation": "horizontal", "displayMode": "gradient", "valueMode": "color",
                        "namePlacement": "auto", "showUnfilled": True, "sizing": "auto",
                        "minVizHeight": 16, "maxVizHeight": 300, "minVizWidth": 8,
                        "legend": legend()}}


def table(title, desc, targets):
    return {"type": "table", "title": title, "description": desc, "targets": targets,
            "fieldConfig": {"defaults": {"custom": {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False}},
                            "overrides": []},
            "options": {"showHeader": True, "frameIndex": 0, "cellHeight": "sm"},
            "transformations": [{"id": "labelsToFields", "options": {}}]}


def text(title, content):
    return {"type": "text", "title": title, "options": {"mode": "markdown", "content": content}}


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def quantiles(metric, selector, qs=(0.5, 0.9, 0.99)):
    return [target(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
                   f"p{int(q * 100)}") for q in qs]


# ---- layout -----------------------------------------------------------------------------------
def layout(items):
    """items: a row (dict of type row) or a list of (width, height, panel) laid left to right.
    Assigns ids and gridPos; a row of panels wraps at width 24."""
    panels, y, next_id = [], 0, 1
    for item in items:
        if isinstance(item, dict):
            item = dict(item, id=next_id, gridPos={"h": 1, "w": 24, "x": 0, "y": y})
            panels.append(item)
            next_id, y = next_id + 1, y + 1
            continue
        x, row_h = 0, 0
        for w, h, panel in item:
            if x + w > 24:
                x, y, row_h = 0, y + row_h, 0
            if "targets" in panel:  # Grafana names each query of a panel A, B, ...
                panel = dict(panel, targets=[dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(panel["targets"])])
            panels.append(dict(panel, id=next_id, gridPos={"h": h, "w": w, "x": x, "y": y}))
            next_id, x, row_h = next_id + 1, x + w, max(row_h, h)
        y += row_h
    return panels


def dashboard(uid, title, desc, variables, items):
    return {"uid": uid, "title": title, "description": desc, "tags": ["scion"], "timezone": "browser",
            "editable": True, "graphTooltip": 1, "fiscalYearStartMonth": 0, "liveNow": False,
            "refresh": "30s", "schemaVersion": SCHEMA_VERSION, "version": 1, "links": [
                {"title": "Scion", "type": "dashboards", "tags": ["scion"], "asDropdown": True,
                 "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                 "tooltip": "", "url": ""}],
            "time": {"from": "now-6h", "to": "now"}, "timepicker": {},
            "templating": {"list": [datasource_var()] + variables}, "panels": layout(items)}


# ---- the dashboards -------------------------------------------------------------------------
def overview():
    return dashboard("scion-overview", "Scion / Overview",
                     "Jobs, queue and dispatch, failures, coordinator health.", [INSTANCE_VAR], [
        row("Jobs"),
        [(4, 4, stat("Queued", "Jobs waiting for a worker.", [target(f'sum(scion_jobs{{{COORD}, state="queued"}})')])),
         (4, 4, stat("Running", "Jobs running on workers.", [target(f'sum(scion_jobs{{{COORD}, state="running"}})')])),
         (4, 4, stat("Pending", "Jobs waiting on their `after` dependencies.", [target(f'sum(scion_jobs{{{COORD}, state="pending"}})')])),
         (4, 4, stat("Workers ready", "Workers heartbeating and accepting jobs.", [target(f'sum(scion_workers{{{COORD}, state="ready"}})')])),
         (4, 4, stat("Workers lost", "Workers that stopped heartbeating.", [target(f'sum(scion_workers{{{COORD}, state="lost"}})')], red_above=1)),
         (4, 4, stat("Coordinator up", "1 when Prometheus scrapes the coordinator.", [target(f"min(up{{{COORD}}})")]))],
        [(12, 8, timeseries("Jobs by state", "Gauge scion_jobs by state.",
                            [target(f"sum by (state) (scion_jobs{{{COORD}}})", "{{state}}")], stack=True)),
         (12, 8, timeseries("Submissions and completions", "Jobs submitted and finished per second, by outcome.",
                            [target(f"sum(rate(scion_job_submissions_total{{{COORD}}}[$__rate_interval]))", "submitted"),
                             target(f"sum by (outcome) (rate(scion_job_completions_total{{{COORD}}}[$__rate_interval]))", "{{outcome}}")],
                            unit="ops"))],
        row("Queue and dispatch"),
        [(8, 8, timeseries("Queue depth", "Jobs in state queued.",
                           [target(f'sum(scion_jobs{{{COORD}, state="queued"}})', "queued")])),
         (8, 8, timeseries("Queue wait", "Time from submission to the first assignment (includes waiting on dependencies).", quantiles("scion_queue_wait_seconds", COORD), unit="s")),
         (8, 8, timeseries("Dispatch latency", "Time from entering the queue to assignment, per attempt.",
                           quantiles("scion_dispatch_latency_seconds", COORD), unit="s"))],
        [(12, 8, timeseries("Failures and requeues", "Failed jobs and attempts requeued after worker loss, per second.",
                            [target(f'sum(rate(scion_job_completions_total{{{COORD}, outcome="failed"}}[$__rate_interval]))', "failed"),
                             target(f"sum(rate(scion_job_requeues_total{{{COORD}}}[$__rate_interval]))", "requeued")], unit="ops")),
         (12, 8, timeseries("Job duration", "Run time of finished jobs.", quantiles("scion_job_duration_seconds", COORD), unit="s"))],
        row("Coordinator health"),
        [(8, 8, timeseries("SQLite commit latency", "Write transaction commit time (fsync included).",
                           quantiles("scion_sqlite_commit_seconds", COORD), unit="s")),
         (8, 8, timeseries("Malformed messages", "Messages dropped as malformed, per socket.",
                           [target(f"sum by (socket) (rate(scion_malformed_messages_total{{{COORD}}}[$__rate_interval]))", "{{socket}}")],
                           unit="ops")),
         (8, 8, timeseries("Artifact traffic", "Artifact bytes per second by direction.",
                           [target(f"sum by (direction) (rate(scion_artifact_bytes_total{{{COORD}}}[$__rate_interval]))", "{{direction}}")],
                           unit="Bps"))],
    ])


def workers():
    return dashboard("scion-workers", "Scion / Workers and GPUs",
                     "Worker states, heartbeats, per-GPU memory and utilisation, running jobs, child crashes.",
                     [INSTANCE_VAR, WORKER_VAR], [
        row("Workers"),
        [(12, 8, timeseries("Workers by state", "As the coordinator sees them.",
                            [target(f"sum by (state) (scion_workers{{{COORD}}})", "{{state}}")])),
         (12, 8, timeseries("Missed heartbeats", "Heartbeat intervals that passed without a message from a worker, per second.",
                            [target(f"sum(rate(scion_heartbeats_missed_total{{{COORD}}}[$__rate_interval]))", "missed")], unit="ops"))],
        [(12, 8, timeseries("Running jobs per worker", "Child processes each worker runs.",
                            [target(f"sum by (worker) (scion_worker_running_jobs{{{WORKER}}})", "{{worker}}")], stack=True)),
         (12, 8, timeseries("Child crashes", "Job processes that died by a signal, per worker.",
                            [target(f"sum by (worker) (increase(scion_worker_child_crashes_total{{{WORKER}}}[$__rate_interval]))", "{{worker}}")])),
         (24, 8, timeseries("Jobs finished per worker", "Per second, by outcome.",
                            [target(f"sum by (worker, outcome) (rate(scion_worker_jobs_total{{{WORKER}}}[$__rate_interval]))",
                                    "{{worker}} {{outcome}}")], unit="ops"))],
        row("GPUs"),
        [(12, 8, timeseries("GPU memory used", "Per GPU; the dashed limit is each GPU's total.",
                            [target(f"scion_gpu_memory_used_bytes{{{WORKER}}}", "{{worker}} gpu{{gpu}} used"),
                             target(f"scion_gpu_memory_total_bytes{{{WORKER}}}", "{{worker}} gpu{{gpu}} total")], unit="bytes")),
         (12, 8, bargauge("GPU memory in use", "Used / total per GPU, now.",
                          [target(f"scion_gpu_memory_used_bytes{{{WORKER}}} / scion_gpu_memory_total_bytes{{{WORKER}}}",
                                  "{{worker}} gpu{{gpu}}", instant=True)], "percentunit", 0, 1)),
         (24, 8, timeseries("GPU utilisation", "Fraction of time a kernel ran, per GPU.",
                            [target(f"scion_gpu_utilization_ratio{{{WORKER}}}", "{{worker}} gpu{{gpu}}")],
                            unit="percentunit", minimum=0, maximum=1))],
        row("Scrape health"),
        [(24, 6, timeseries("Worker targets up", "1 when Prometheus scrapes a worker's /metrics.",
                            [target('up{job="scion-worker"}', "{{instance}}")], minimum=0, maximum=1))],
    ])


def experiments():
    live = f"scion_job_live_metric{{{WORKER}, name=~\"$metric\"}}"
    return dashboard("scion-experiments", "Scion / Experiments",
                     "Live metrics of running jobs (by worker slot, bounded) and search progress.",
                     [INSTANCE_VAR, WORKER_VAR, METRIC_VAR], [
        row("Live job metrics"),
        [(24, 9, timeseries("Live metrics", "Latest value a running job reported, per worker slot. A slot is reused by the "
                            "next job; the job behind a slot is in `scion workers` and its full history in `scion metrics ID`.",
                            [target(live, "{{worker}} slot {{slot}} {{name}}")])),
         (24, 8, table("Latest values", "One row per worker slot and metric.",
                       [target(live, "", instant=True, fmt="table")]))],
        row("Search progress"),
        [(8, 8, stat("Trials finished", "Jobs finished in the selected range, all outcomes (search trials are jobs).",
                     [target(f"sum(increase(scion_job_completions_total{{{COORD}}}[$__range]))")])),
         (8, 8, stat("Trials in flight", "Jobs queued, assigned or running.",
                     [target(f'sum(scion_jobs{{{COORD}, state=~"queued|assigned|running"}})')])),
         (8, 8, stat("Trials waiting on dependencies", "Jobs pending on `after`.",
                     [target(f'sum(scion_jobs{{{COORD}, state="pending"}})')]))],
        [(12, 8, timeseries("Trials finished by outcome", "Cumulative over the selected range.",
                            [target(f"sum by (outcome) (increase(scion_job_completions_total{{{COORD}}}[$__range]))", "{{outcome}}")])),
         (12, 8, timeseries("Best and worst live value", "Lowest and highest value of each selected metric over the range, "
                            "across running jobs.",
                            [target(f"min by (name) (min_over_time({live}[$__range]))", "min {{name}}"),
                             target(f"max by (name) (max_over_time({live}[$__range]))", "max {{name}}")])),
         (24, 4, text("Per-search detail", "Prometheus holds cluster-wide series only (no job or search labels, to "
                      "keep cardinality bounded). Per-trial results, the search's best point and its history live "
                      "in the coordinator's store: `scion search show ID`, `scion compare ...`, `scion metrics ID --csv`."))],
    ])


DASHBOARDS = {"scion-overview.json": overview, "scion-workers.json": workers, "scion-experiments.json": experiments}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        text_out = json.dumps(build(), indent=2) + "\n"
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text_out:
                stale.append(name)
        else:
            path.write_text(text_out)
    if stale:
        print("dashboards out of date (run python3 dashboards/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
