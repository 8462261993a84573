#!/usr/bin/env bash
# Eddy's main job, from a fresh clone: installs what is missing for Rust handlers
# (examples/setup.sh: the wasm32 target and wasm-tools),
# builds the example handlers and the host, then runs the host with the `totals`
# and `inspect` handlers in a watched functions/ folder, puts the sample records
# (examples/sample-records.jsonl) on the embedded local stream "sales", and shows
# the handlers' log lines and the host's status.
#
#   examples/quickstart.sh                  # run the demo, then stop the host
#   examples/quickstart.sh --keep-running   # leave the host running (Ctrl-C stops it)
#
# The demo lives in target/quickstart (or $EDDY_DEMO_DIR); the admin port is
# 127.0.0.1:8700 (or $EDDY_ADMIN_ADDR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Each step says how long it took: on a fresh 2-core machine nearly all of it is
# the first build of the host (BENCHMARKS.md has the split).
step_started=$(date +%s)
took() { local now; now=$(date +%s); echo "quickstart: $1 in $((now - step_started)) s" >&2; step_started=$now; }
examples/setup.sh
took "set up the Rust guest toolchain"
examples/build.sh totals inspect
took "built the totals and inspect handlers"
echo "quickstart: building the host (a first build takes minutes; later ones seconds)" >&2
cargo build --release --locked -p eddy-host
took "built the host"
eddy=${CARGO_TARGET_DIR:-$root/target}/release/eddy
export EDDY_ADMIN_ADDR=${EDDY_ADMIN_ADDR:-127.0.0.1:8700}

demo=${EDDY_DEMO_DIR:-$root/target/quickstart}
rm -rf "$demo"
mkdir -p "$demo/functions"
cp examples/totals/totals.toml examples/dist/totals.wasm \
   examples/inspect/inspect.toml examples/dist/inspect.wasm "$demo/functions/"
cd "$demo"

"$eddy" stream create sales --shards 2
"$eddy" run &
host=$!
trap 'kill -TERM $host 2>/dev/null; wait $host 2>/dev/null || true' EXIT

# Wait for both functions to be up, put the records, wait for them to be handled.
functions_done() { # $1: records each function must have finished with
  local report
  report=$("$eddy" status --json 2>/dev/null) || return 1 # the host is not up yet
  python3 -c '
import json, sys
want = int(sys.argv[1])
try:
    fs = json.loads(sys.argv[2])["functions"]
except (ValueError, KeyError):
    sys.exit(1)
done = [sum(s["records_processed"] + s["records_discarded"] for s in f["shards"]) for f in fs if f["state"] == "running"]
sys.exit(0 if len(done) == 2 and all(d >= want for d in done) else 1)' "$1" "$report"
}
wait_until() { # $1: what, then a command
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" && return 0; sleep 0.2; done
  echo "quickstart: timed out waiting for $what" >&2; exit 1
}
wait_until "the functions to load" functions_done 0
records=$(grep -c . "$root/examples/sample-records.jsonl")
echo "quickstart: putting $records sales on the stream; one of them, \"this is not a sale\", is bad on purpose:" >&2
echo "quickstart: totals reports it as a batch item failure, Eddy retries it twice (MaximumRetryAttempts = 2), then gives up on it" >&2
"$eddy" put sales --file "$root/examples/sample-records.jsonl" >/dev/null
wait_until "the records to be handled" functions_done "$records"
took "handled the records"

echo
"$eddy" status
if [ "${1:-}" = "--keep-running" ]; then
  echo
  echo "The host keeps running (admin: http://$EDDY_ADMIN_ADDR/status). Try, from $demo:"
  echo "  $eddy put sales -k dave -d '{\"amount\": 5}'"
  echo "Ctrl-C stops it."
  wait $host
fi
