#!/bin/sh
# Drain throughput of several jobd binaries, alternating, so that a change
# of the machine's load falls on all of them alike:
#
#   bench/probes/drain_ab.sh ROUNDS BACKLOG LABEL=BINARY [LABEL=BINARY ...]
#   bench/probes/drain_ab.sh 2 50000 old=/work/old-bin/jobd new=target/release/jobd
#
# Each round runs `jobd-bench --only drain --backlog BACKLOG --jobd BINARY`
# (both stores, each on a fresh SQLite file / its own redis-server) once per
# binary, in the order given, and prints one line per binary and store:
# label, round, store, drain and steady jobs/s, the 1-minute load average
# before the run. Builds the bench once (`cargo bench --no-run`).
set -eu
rounds=$1
backlog=$2
shift 2
cd "$(dirname "$0")/../.."
bench=$(cargo bench --bench jobd-bench --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "jobd-bench" and m.get("executable"):
        print(m["executable"])')
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf 'label\tround\tstore\tdrain_jobs_per_s\tsteady_jobs_per_s\tload_1m\n'
round=1
while [ "$round" -le "$rounds" ]; do
    for pair in "$@"; do
        label=${pair%%=*}
        binary=${pair#*=}
        load=$(cut -d' ' -f1 /proc/loadavg)
        timeout 600 "$bench" --only drain --backlog "$backlog" --jobd "$binary" \
            --json "$out/run.json" >/dev/null 2>&1
        python3 - "$out/run.json" "$label" "$round" "$load" <<'EOF'
import json, sys
path, label, round_, load = sys.argv[1:]
with open(path) as f:
    runs = json.load(f)
for run in runs if isinstance(runs, list) else [runs]:
    drain = run["drain"]
    print(f"{label}\t{round_}\t{run['store']}\t{drain['drain_jobs_per_s']:.0f}"
          f"\t{drain['steady_jobs_per_s']:.0f}\t{load}")
EOF
        rm -f "$out/run.json"
    done
    round=$((round + 1))
done
