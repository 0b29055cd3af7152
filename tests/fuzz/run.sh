#!/usr/bin/env bash
# The schema-driven fuzzer against jobd on both stores: schemathesis (pinned
# in tests/fuzz/requirements.txt, installed from PyPI into target/fuzz-venv
# and reused while the pins are unchanged) reads /api/v1/openapi.json from a
# running `jobd serve` and sends what the document allows and what it does
# not, first on SQLite, then on Redis (its own redis-server on a free port,
# nothing persisted), each with `auth = "none"` and with `auth = "token"`
# (schemathesis then sends the bootstrap admin token, so it reaches every
# route; the authorization matrix test covers the other roles). It fails on
# any response that is a 5xx or contradicts
# the document (status, content type, body or event schema, headers), on a
# network error, and when a store runs past its time.
#
#   tests/fuzz/run.sh                  # target/debug/jobd, 45 s per store and mode
#   JOBD=target/release/jobd FUZZ_SECONDS=300 tests/fuzz/run.sh
#   FUZZ_STORES=redis FUZZ_AUTH=token tests/fuzz/run.sh
#
# FUZZ_SEED fixes the generator's seed (default 1, so CI runs repeat).
set -euo pipefail
cd "$(dirname "$0")/../.."

jobd=${JOBD:-target/debug/jobd}
seconds=${FUZZ_SECONDS:-45}
seed=${FUZZ_SEED:-1}
stores=${FUZZ_STORES:-sqlite redis}
auth_modes=${FUZZ_AUTH:-none token}
venv=target/fuzz-venv
[ -x "$jobd" ] || { echo "no $jobd: build it first (cargo build)" >&2; exit 1; }

# The pinned schemathesis, installed once per change of the pins.
if ! cmp -s tests/fuzz/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/fuzz/requirements.txt
  cp tests/fuzz/requirements.txt "$venv/requirements.txt"
fi

scratch=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 30 s for `url` to answer; fails with the log otherwise.
wait_for() {
  local url=$1 log=$2
  for _ in $(seq 300); do
    curl -sf -o /dev/null "$url" && return 0
    sleep 0.1
  done
  echo "$url did not answer within 30 s:" >&2; tail -20 "$log" >&2; exit 1
}

fuzz() {
  local store=$1 auth=$2 dir=$scratch/$1-$2 store_args=() auth_args=() headers=()
  if [ "$auth" = token ]; then
    # A fresh admin secret per run, given to jobd and schemathesis only.
    local admin; admin=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
    auth_args=(--auth token)
    headers=(-H "Authorization: Bearer $admin")
  fi
  mkdir -p "$dir/docs"
  if [ "$store" = redis ]; then
    local redis_port; redis_port=$(free_port)
    mkdir -p "$dir/redis"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$dir/redis" >"$dir/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
      redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    store_args=(--store "redis://127.0.0.1:$redis_port/0")
  fi
  local port; port=$(free_port)
  # Fuzzed jobs run, and none can slow the run: sleeps hold a slot, not the
  # CPU; the pipeline's job types may only read the empty docs/ directory;
  # a default-length sleep of the type's example ends within 2 s.
  cat >"$dir/jobd.toml" <<EOF
[job_types.sleep]
timeout_seconds = 2
EOF
  JOBD_ADMIN_TOKEN=${admin:-} "$jobd" serve --bind "127.0.0.1:$port" --data-dir "$dir/data" \
    --documents-root "$dir/docs" --config "$dir/jobd.toml" "${store_args[@]}" "${auth_args[@]}" \
    >"$dir/serve.log" 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$port/health" "$dir/serve.log"

  echo "== schemathesis on $store, auth $auth (at most $seconds s)"
  local started=$SECONDS status=0
  # --max-time is a budget that fuzzing and stateful testing spend in
  # full; `timeout` bounds the whole command in case a phase overruns it.
  timeout $((seconds + 60)) "$venv/bin/st" --config-file tests/fuzz/schemathesis.toml run \
    "http://127.0.0.1:$port/api/v1/openapi.json" "${headers[@]}" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-time "$seconds" --seed "$seed" --generation-database none \
    --no-color || status=$?
  # The server's own count of what it answered, by status class.
  local answered
  answered=$(curl -sf "${headers[@]}" "http://127.0.0.1:$port/metrics" | python3 -c '
import collections, re, sys
counts = collections.Counter()
for line in sys.stdin:
    m = re.match(r"jobd_http_request_duration_seconds_count\{.*status=\"(\d)\d\d\".*\} (\d+)", line)
    if m:
        counts[m.group(1) + "xx"] += int(m.group(2))
print(sum(counts.values()), "responses:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
if counts["5xx"]:
    sys.exit(1)
') || status=1
  echo "== schemathesis on $store, auth $auth: exit $status after $((SECONDS - started)) s; jobd answered $answered"
  if grep -q 'panicked' "$dir/serve.log"; then
    echo "jobd on $store (auth $auth) logged a panic:" >&2; grep -m5 'panicked' "$dir/serve.log" >&2; status=1
  fi
  return "$status"
}

failed=0
for store in $stores; do
  for auth in $auth_modes; do
    fuzz "$store" "$auth" || failed=1
  done
done
exit "$failed"
