#!/bin/sh
# Profile a real `fingerplat serve` under finger load with py-spy.
#
#   bench/profile.sh DATABASE_URL USERS OUT_PREFIX [SECONDS] [extra serve args...]
#
# The database must already be migrated and seeded (bench/seed.py). Writes
# OUT_PREFIX.txt (py-spy's collapsed stacks, one line per stack) and prints the
# functions with the most samples (own time) and the load generator's summary.
# Needs py-spy in the venv (`.venv/bin/pip install py-spy`) and ptrace rights.
set -eu
url=$1; users=$2; out=$3; secs=${4:-15}; shift 3; [ $# -gt 0 ] && shift
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$here/.venv/bin
conf=$(mktemp /tmp/fingerplat-profile.XXXXXX.toml)
log=$(mktemp /tmp/fingerplat-profile.XXXXXX.log)
cat >"$conf" <<'EOF'
[finger]
listen = ["127.0.0.1:0"]
rate_limit = 100000000
access_log = false
[setter]
listen = []
EOF
taskset -c 0 "$venv/fingerplat" --database-url "$url" serve --config "$conf" "$@" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$conf"' EXIT
for _ in $(seq 100); do grep -q "finger listening on" "$log" && break; sleep 0.1; done
port=$(sed -n 's/.*finger listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$log" | head -1)
# Warm up (fills pools and, where there is one, the read cache), then record.
taskset -c 1 "$venv/python" "$here/bench/loadgen.py" --port "$port" --users "$users" -d "${WARM:-3}" -w 0 >/dev/null
taskset -c 1 "$venv/python" "$here/bench/loadgen.py" --port "$port" --users "$users" -d "$secs" -w 1 \
    --server-pid "$pid" --check &
load=$!
sleep 2
"$venv/py-spy" record -p "$pid" -d $((secs - 3)) -r 250 -f raw -o "$out.txt" --nonblocking >/dev/null 2>&1 || true
wait $load
"$venv/python" "$here/bench/profile_summary.py" "$out.txt"
