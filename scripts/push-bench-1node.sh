#!/bin/sh
# Push approvals on one node (SQLite): 15,000 companion-app sockets held by
# three idlink-companion load processes on the stream listener, requests
# created through the push package at RATE per second by the development
# harness (POST /dev/push/bench). Reports JSON (delivery latency from the
# request's creation to its arrival on the phone's socket, server RSS per
# socket, and answer latency when ANSWER is approve).
#
#   make build && scripts/push-bench-1node.sh OUT.json [RATE=1000] [ANSWER=none|deny|approve]
#
# The first run seeds 15,000 accounts and devices (about 20 s) into
# $BENCH_DIR/data.pristine; every run starts from a copy of it.
set -e
OUT=${1:?usage: push-bench-1node.sh OUT.json [RATE] [ANSWER]}; RATE=${2:-1000}; ANSWER=${3:-none}
BIN=$(cd "$(dirname "$0")/.." && pwd)/bin
DIR=${BENCH_DIR:-/tmp/idlink-push-bench}
mkdir -p "$DIR" && cd "$DIR"
export IDLINK_ENV=development IDLINK_DATA_DIR=$DIR/data IDLINK_ISSUER=http://localhost:8099 \
  IDLINK_ADDR=127.0.0.1:8099 IDLINK_STREAM_ADDR=127.0.0.1:8098 IDLINK_LOG_LEVEL=warn
if [ ! -d data.pristine ]; then
  rm -rf data && "$BIN/idlink" dev seed-devices -n 15000 -out devices.json && cp -a data data.pristine
fi
rm -rf data && cp -a data.pristine data
"$BIN/idlink" serve > server.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
sleep 2
"$BIN/idlink-companion" load -devices devices.json -count 15000 -url http://127.0.0.1:8098 \
  -bench-url http://127.0.0.1:8099 -api-urls http://127.0.0.1:8099 -procs 3 \
  -source-ips 127.0.0.2,127.0.0.3,127.0.0.4 -concurrency 200 -server-pid $SERVER \
  -bench-rate "$RATE" -answer "$ANSWER" -hold 30s > "$OUT"
