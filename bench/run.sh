#!/usr/bin/env bash
# Benchmark: credgate's cost per request on loopback, measured with wrk (not part of CI).
#   bash bench/run.sh [seconds per run, default 10]
# Runs, against a minimal local upstream: direct (no proxy), a proxied GET that needs no
# permission, a proxied tracking event whose group holds unscoped "Events: Set" (streamed, not
# inspected), and the same event for a group holding only "Consent: Set" (body read, parsed,
# checked, then forwarded). All four share the machine (2 cores here): compare them, do not
# read them as absolute capacity.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release --quiet --bin credgate --example bench_upstream

dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
project=12345678-1234-1234-1234-123456789abc
cat >"$dir/credgate.yaml" <<YAML
listen: 127.0.0.1:18080
admin_listen: 127.0.0.1:18090
upstream: { base_url: "http://127.0.0.1:18081" }
project_token: $project
secrets_file: secrets.yaml
log: { allowed: none }
groups:
  consent: { access: private, permissions: ["Consent: Get + Set"] }
  tracking: { access: public, permissions: ["Events: Set"] }
routes:
  - { group: tracking, match: { headers: { x-credgate-group: tracking } } }
  - { group: consent }
YAML
cat >"$dir/secrets.yaml" <<YAML
consent: { key_id: bench-key-id, secret: bench-secret }
tracking: { token: bench-token }
YAML
event='{"customer_ids":{"registered":"user-1"},"event_type":"consent","timestamp":1733300000,"properties":{"action":"accept","category":"newsletter","valid_until":"unlimited"}}'
cat >"$dir/unscoped.lua" <<LUA
wrk.method = "POST"
wrk.body = '$event'
wrk.headers["content-type"] = "application/json"
wrk.headers["x-credgate-group"] = "tracking"
LUA
cat >"$dir/scoped.lua" <<LUA
wrk.method = "POST"
wrk.body = '$event'
wrk.headers["content-type"] = "application/json"
LUA

target/release/examples/bench_upstream 127.0.0.1:18081 &
CREDGATE_LOG=warn target/release/credgate run --config "$dir/credgate.yaml" &
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.1; done

run() {
  local name=$1; shift
  local out
  out=$(wrk -t1 -c32 -d"${secs}s" --latency "$@")
  printf '%-34s %10s req/s   avg %8s   p50 %8s   p99 %8s\n' "$name" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '/^    Latency/ {print $2}' <<<"$out")" \
    "$(awk '/^ +50%/ {print $2}' <<<"$out")" \
    "$(awk '/^ +99%/ {print $2}' <<<"$out")"
}
events="/track/v2/projects/$project/customers/events"
run "direct upstream" "http://127.0.0.1:18081$events" -s "$dir/scoped.lua"
run "proxied GET system/time" "http://127.0.0.1:18080/track/v2/projects/$project/system/time"
run "proxied event, unscoped (streamed)" "http://127.0.0.1:18080$events" -s "$dir/unscoped.lua"
run "proxied event, scoped (inspected)" "http://127.0.0.1:18080$events" -s "$dir/scoped.lua"
