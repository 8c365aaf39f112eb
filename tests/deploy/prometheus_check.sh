#!/usr/bin/env bash
# promtool on the Prometheus assets: config, rules, and the rules' unit tests.
# Usage: prometheus_check.sh REPO
set -euo pipefail
dir=$1/deploy/prometheus
promtool check config "$dir/prometheus.yml"
find "$dir/rules" -name "*.yml" ! -name "*.test.yml" -print0 | xargs -0 promtool check rules
find "$dir/rules" -name '*.test.yml' -print0 | xargs -0 promtool test rules
