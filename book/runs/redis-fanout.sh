#!/usr/bin/env bash
# How many pub/sub copies can one Redis send a second? The figure chapter 11's "going much
# further" section builds its arithmetic on, measured on this machine rather than assumed.
#
#   bash book/runs/redis-fanout.sh              # needs redis-server, redis-cli, redis-benchmark
#   bash book/runs/redis-fanout.sh | tee book/runs/redis-fanout.log    # records it again
#
# A redis-server of its own (a free port, a temporary directory, no persistence), then for each
# number of subscribers S: S `redis-cli SUBSCRIBE` clients on one channel, reading everything,
# and `redis-benchmark` publishing 300-byte messages (about the size of chapter 11's envelopes)
# on that channel as fast as 8 connections with 16 commands in flight each allow. Redis sends
# every publication to every subscriber: copies a second = publications a second × S.
# Everything runs on this one machine, so Redis shares its cores with the subscribers and the
# benchmark: a dedicated Redis host does better.
set -euo pipefail
for tool in redis-server redis-cli redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
subscribers=()
cleanup() {
  for pid in "${subscribers[@]}"; do kill "$pid" 2>/dev/null || true; done
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --daemonize yes --logfile "$dir/redis.log" >/dev/null
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

messages=${MESSAGES:-200000}
payload=$(head -c 300 /dev/zero | tr '\0' x)
echo "$(redis-server --version | cut -d' ' -f1-3), $(nproc) cores, $(uname -sr); $messages publications of 300 bytes per line"
printf '%12s %18s %16s\n' subscribers "publications/s" "copies/s"
for count in 0 1 2 5 10 20 50; do
  while [ "${#subscribers[@]}" -lt "$count" ]; do
    redis-cli -p "$port" subscribe fanout:chat >/dev/null &
    subscribers+=("$!")
  done
  # Wait until Redis counts them all as subscribed.
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$port" pubsub numsub fanout:chat | tail -1)" -ge "$count" ] && break
    sleep 0.05
  done
  rate=$(redis-benchmark -p "$port" -n "$messages" -c 8 -P 16 -q publish fanout:chat "$payload" \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | cut -d' ' -f1)
  printf '%12d %18.0f %16.0f\n' "$count" "$rate" "$(echo "$rate * $count" | bc)"
done
