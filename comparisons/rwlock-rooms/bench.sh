#!/usr/bin/env bash
# The measurements of RESULTS.md: chapter 09-rooms against this crate, same machine, same run.
#
#   cargo build --release -p ch09-rooms -p cmp-rwlock-rooms -p fanout-load --bins --examples
#   comparisons/rwlock-rooms/bench.sh [OUT_DIR]     # default: /tmp/cmp-bench
#   PARTS=1 comparisons/rwlock-rooms/bench.sh DIR    # only part 1 (the scenarios); 2, 3, 4 likewise
#
# Every run starts a fresh server, records `uptime` before it, and keeps the generator's JSON
# line (and the server's /stats after it) in OUT_DIR/*.json; `summary.py` tabulates them.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/cmp-bench}
parts=${PARTS:-1234}
mkdir -p "$out"
bin=target/release
load=$bin/fanout-load
churn=$bin/examples/churn
port=3917
url=ws://127.0.0.1:$port/ws

# name -> server command
declare -A servers=(
  [ch09]="$bin/ch09-rooms"
  [cmp]="$bin/cmp-rwlock-rooms"
  [cmp-batch]="$bin/cmp-rwlock-rooms --batch 256"
  [cmp-hold]="$bin/cmp-rwlock-rooms --hold-lock-across-await"
)

start() { # name
  # shellcheck disable=SC2086
  ${servers[$1]} --addr 127.0.0.1:$port > "$out/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    grep -q "listening on" "$out/server.log" 2>/dev/null && return
    sleep 0.05
  done
  echo "server $1 did not start" >&2; exit 1
}
stop() { # SIGTERM, and SIGKILL if it has not exited within 3 s (a frozen server may not)
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stats() { # file
  curl -s -m 2 "http://127.0.0.1:$port/stats" > "$1" || echo '{"stats":"no answer within 2s"}' > "$1"
}

# 1. The project's scenarios, interleaved so that a change in the machine's load hits all alike.
[[ $parts == *1* ]] && for scenario in s1 s2 s3; do
  for name in ch09 cmp cmp-batch; do
    echo "== $scenario $name ($(uptime))"
    echo "$(uptime)" > "$out/$scenario-$name.uptime"
    start "$name"
    $load --url "$url" --scenario "$scenario" --pid "$pid" --no-progress \
      > "$out/$scenario-$name.json" 2> "$out/$scenario-$name.txt"
    stats "$out/$scenario-$name.stats.json"
    stop
  done
done

# 2. Lock contention: renames and room changes, alone and while s1 chats.
[[ $parts == *2* ]] && for name in ch09 cmp; do
  echo "== churn $name ($(uptime))"
  echo "$(uptime)" > "$out/churn-$name.uptime"
  start "$name"
  $churn churn --url "$url" --clients 4 --duration 10s > "$out/churn-$name.json"
  stats "$out/churn-$name.stats.json"
  stop
  echo "== churn+s1 $name ($(uptime))"
  echo "$(uptime)" > "$out/churn-s1-$name.uptime"
  start "$name"
  $churn churn --url "$url" --clients 4 --duration 12s > "$out/churn-s1-$name.churn.json" &
  churning=$!
  $load --url "$url" --scenario s1 --pid "$pid" --no-progress \
    > "$out/churn-s1-$name.json" 2> "$out/churn-s1-$name.txt"
  wait "$churning"
  stats "$out/churn-s1-$name.stats.json"
  stop
done

# 3. A lock held across `.await`: a client that asks /who and reads nothing (for 50 s, then it
#    reads again and reports what it finds), then churn and s1 while it stalls.
[[ $parts == *3* ]] && for name in ch09 cmp cmp-hold; do
  echo "== hold $name ($(uptime))"
  echo "$(uptime)" > "$out/hold-$name.uptime"
  start "$name"
  $churn stall-who --url "$url" --duration 50s > "$out/hold-$name.stall.json" &
  stalling=$!
  sleep 3
  stats "$out/hold-$name.before.stats.json"
  $churn churn --url "$url" --clients 4 --duration 12s > "$out/hold-$name.churn.json" &
  churning=$!
  $load --url "$url" --scenario s1 --pid "$pid" --no-progress \
    > "$out/hold-$name.json" 2> "$out/hold-$name.txt" || true
  wait "$churning" || true
  stats "$out/hold-$name.after.stats.json"
  wait "$stalling" || true
  stop
done
# 4. When the clients of s2 are registered: /stats every 0.1 s during s2 against cmp-batch
#    (seconds since the start, connections, longest wait for the write lock in µs).
if [[ $parts == *4* ]]; then
  echo "== s2 registration cmp-batch ($(uptime))"
  echo "$(uptime)" > "$out/s2-registration.uptime"
  start cmp-batch
  t0=$(date +%s.%N)
  $load --url "$url" --scenario s2 --pid "$pid" --no-progress \
    > "$out/s2-registration.json" 2> "$out/s2-registration.txt" &
  loading=$!
  while kill -0 "$loading" 2>/dev/null; do
    now=$(date +%s.%N)
    line=$(curl -s -m 1 "http://127.0.0.1:$port/stats" || true)
    echo "$(echo "$now - $t0" | bc) $line" >> "$out/s2-registration.poll"
    sleep 0.1
  done
  stats "$out/s2-registration.stats.json"
  stop
fi
echo "done: $out"
