#!/bin/sh
# Push approvals across three replicas on one PostgreSQL: each replica holds
# 15,000 sockets; requests are created through replica A for the 30,000
# devices held by B and C, so every delivery crosses the LISTEN/NOTIFY bus.
#
#   make build && scripts/push-bench-3replicas.sh OUT.json [RATE=1000]
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust) with max_connections of at
# least 150 (three pools of 32, listeners, publishers). The first run seeds
# 45,000 accounts and devices (about 75 s) and keeps a dump to restore.
set -e
OUT=${1:?usage: push-bench-3replicas.sh OUT.json [RATE]}; RATE=${2:-1000}
BIN=$(cd "$(dirname "$0")/.." && pwd)/bin
DIR=${BENCH_DIR:-/tmp/idlink-push-bench}
PG=${PG:-postgres://root@127.0.0.1:5432}
mkdir -p "$DIR" && cd "$DIR"
export IDLINK_ENV=development IDLINK_ISSUER=http://localhost:8099 IDLINK_LOG_LEVEL=warn
export IDLINK_DATABASE_URL="$PG/idlinkbench?sslmode=disable"
[ -f pgkey ] || head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n' > pgkey
export IDLINK_SECRET_KEY=$(cat pgkey)
psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS idlinkbench" -c "CREATE DATABASE idlinkbench"
if [ ! -f idlinkbench.dump ]; then
  IDLINK_DATA_DIR=$DIR/seed "$BIN/idlink" dev seed-devices -n 45000 -workers 8 -out devices45k.json
  pg_dump -Fc "$PG/idlinkbench" > idlinkbench.dump
else
  pg_restore -d "$PG/idlinkbench" idlinkbench.dump
fi
PIDS=""
for i in 1 2 3; do
  IDLINK_DATA_DIR=$DIR/replica$i IDLINK_ADDR=127.0.0.1:810$i IDLINK_STREAM_ADDR=127.0.0.1:811$i \
    "$BIN/idlink" serve > replica$i.log 2>&1 &
  PIDS="$PIDS $!"
done
trap 'kill $PIDS 2>/dev/null' EXIT
sleep 3
# A holds its 15,000 and creates nothing; B and C hold 15,000 each, and A
# creates their requests.
"$BIN/idlink-companion" load -devices devices45k.json -from 0 -count 15000 -url http://127.0.0.1:8111 \
  -procs 3 -source-ips 127.0.0.2,127.0.0.3 -concurrency 100 -answer none -hold 70s > "$OUT.replicaA" &
HOLD=$!
"$BIN/idlink-companion" load -devices devices45k.json -from 15000 -count 30000 \
  -urls http://127.0.0.1:8112,http://127.0.0.1:8113 -api-urls http://127.0.0.1:8102,http://127.0.0.1:8103 \
  -bench-url http://127.0.0.1:8101 -procs 5 -source-ips 127.0.0.4,127.0.0.5,127.0.0.6 -concurrency 150 \
  -bench-rate "$RATE" -answer none -hold 30s > "$OUT"
wait $HOLD
for p in $PIDS; do grep VmRSS /proc/$p/status; done > "$OUT.rss"
