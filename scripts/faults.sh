#!/bin/sh
# Fault drill: two replicas on one PostgreSQL under a steady login load,
# while faults are played one after another — a locked sessions table, the
# database killing every connection, a PostgreSQL restart (only when
# FAULTS_RESTART_PG=1: never on a server others share), an SMS provider
# outage, and a replica killed with SIGKILL. It prints, per phase, what the
# replicas answered (HTTP status counts of GET /login and GET /readyz,
# probed every 100 ms; 000 is no answer), the load generator's result, and
# what was lost: accounts left with failed logins or locked, codes marked
# used with no completed login after them, logins recorded without a
# session, and how many requests were answered 500.
#
#   make build && scripts/faults.sh [OUT.txt]
#
# Needs psql and PostgreSQL on $PG (default postgres://postgres@127.0.0.1:5432)
# allowing CREATE DATABASE. Uses ports 8201-8203 and the database idlinkfaults.
set -eu
OUT=${1:-/dev/stdout}
BIN=$(cd "$(dirname "$0")/.." && pwd)/bin
DIR=${FAULTS_DIR:-/tmp/idlink-faults}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DBURL="$PG/idlinkfaults?sslmode=disable"
mkdir -p "$DIR" && cd "$DIR" && rm -f probe.* *.log
psql -q "$PG/postgres?sslmode=disable" -c "DROP DATABASE IF EXISTS idlinkfaults" -c "CREATE DATABASE idlinkfaults"

export IDLINK_ENV=development IDLINK_LOG_LEVEL=warn IDLINK_DATABASE_URL="$DBURL"
export IDLINK_ISSUER=http://127.0.0.1:8201 IDLINK_SECRET_KEY=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Fail fast: short lock wait and request deadline, small pools.
export IDLINK_DB_LOCK_TIMEOUT=500ms IDLINK_DB_STATEMENT_TIMEOUT=3s IDLINK_REQUEST_TIMEOUT=4s IDLINK_DB_MAX_OPEN_CONNS=8

start() { # start NAME PORT [VAR=VALUE…]
  name=$1 port=$2; shift 2
  env IDLINK_DATA_DIR="$DIR/$name" IDLINK_ADDR=127.0.0.1:$port "$@" "$BIN/idlink" serve >> "$name.log" 2>&1 &
  echo $! > "$name.pid"
  i=0; until curl -fs -o /dev/null "http://127.0.0.1:$port/healthz"; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.1; done
}
stop_all() { for f in *.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done; }
trap stop_all EXIT

start a 8201
start b 8202
# c sends texts through a "GOV.UK Notify" that is down (nothing listens).
start c 8203 IDLINK_NOTIFY_PROVIDER=notify IDLINK_NOTIFY_API_KEY=drill-00000000-0000-0000-0000-000000000000-00000000-0000-0000-0000-000000000000 IDLINK_NOTIFY_BASE_URL=http://127.0.0.1:9

probe() { # probe NAME URL: GET it every 100 ms, tagging each answer with the phase in ./phase
  while :; do
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$2") || true
    echo "$(cat phase) $1 $code" >> probe.log
    sleep 0.1
  done
}
phase() { echo "$1" > phase; }
phase setup
PROBES=""
for t in a_login:8201/login b_login:8202/login a_readyz:8201/readyz b_readyz:8202/readyz; do
  probe "${t%%:*}" "http://127.0.0.1:${t#*:}" & PROBES="$PROBES $!"
done
"$BIN/idlink-loadlogin" -url http://127.0.0.1:8201 -accounts 100 -concurrency 4 -duration 60s > load-a.log 2>&1 &
LOAD=$!
i=0; until grep -q '^created' load-a.log; do i=$((i+1)); [ $i -gt 600 ] && { cat load-a.log; exit 1; }; sleep 0.1; done

phase baseline; sleep 4

phase table_lock # 6 s with the sessions table locked against everything
psql -q "$DBURL" -c "BEGIN" -c "LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(6)" -c "COMMIT" > /dev/null
phase after_lock; sleep 3

phase connection_kills # every pooled connection killed, three times
for i in 1 2 3; do
  psql -qtA "$DBURL" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'idlinkfaults' AND application_name = 'idlink'" > /dev/null
  sleep 1
done
phase after_kills; sleep 3

if [ "${FAULTS_RESTART_PG:-0}" = 1 ]; then
  phase pg_restart
  pg_ctlcluster "${PG_VERSION:-$(ls /etc/postgresql | tail -1)}" main restart
  phase after_restart; sleep 5
fi

phase provider_outage # a right password through c, whose SMS provider is down, five times
EMAIL=$(psql -qtA "$DBURL" -c "SELECT email FROM accounts WHERE status = 'active' LIMIT 1")
for i in 1 2 3 4 5; do
  rm -f jar
  TOKEN=$(curl -s -c jar -b jar http://127.0.0.1:8203/login | sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -1)
  curl -s -o /dev/null -w 'provider_outage c_password_post %{http_code}\n' -c jar -b jar \
    --data-urlencode "csrf_token=$TOKEN" --data-urlencode "email=$EMAIL" --data-urlencode "password=load test passphrase 42" \
    http://127.0.0.1:8203/login >> probe.log
done
phase after_outage; sleep 2

phase replica_kill # b dies with SIGKILL mid-load and comes back
kill -9 "$(cat b.pid)"; sleep 3
start b 8202
phase after_replica_kill; sleep 3

phase load_ends
wait $LOAD || true
kill $PROBES 2>/dev/null || true
phase done

{
  echo "== answers per phase (target status count)"
  awk '{p = $1; k = $2 " " $3; if (!(p in seen)) { order[++np] = p; seen[p] = 1 }
        if (!((p, k) in n)) keys[p, ++nk[p]] = k; n[p, k]++}
       END {for (i = 1; i <= np; i++) { p = order[i]; printf "%-20s", p
              for (j = 1; j <= nk[p]; j++) { k = keys[p, j]; printf "  %s×%d", k, n[p, k] }; print "" }}' probe.log
  echo "== load generator on replica a"
  tail -2 load-a.log
  echo "== lost"
  psql -qtA "$DBURL" -F ' ' -c "SELECT 'accounts_with_failed_logins', count(*) FROM accounts WHERE failed_logins > 0" \
    -c "SELECT 'accounts_locked', count(*) FROM accounts WHERE locked_until > now()" \
    -c "SELECT 'login_codes_used_without_login', count(*) FROM security_codes c WHERE c.purpose = 'login' AND c.used_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM audit_events e WHERE e.type = 'login.completed' AND e.account_id = c.subject AND e.at >= c.used_at - interval '1 second')" \
    -c "SELECT 'logins_completed_without_session', count(*) FROM audit_events e WHERE e.type = 'login.completed'
          AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.account_id = e.account_id AND s.created_at <= e.at + interval '1 second')"
  echo "== HTTP 500s logged"
  grep -h '"status":500' a.log b.log c.log | wc -l
} > "$OUT"
