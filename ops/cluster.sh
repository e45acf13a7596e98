#!/usr/bin/env bash
# cluster.sh - a local Switchyard cluster in .yard/: NATS with JetStream,
# PostgreSQL, the gateway and one worker per role.
#
#   ops/cluster.sh up      start whatever is not running (idempotent)
#   ops/cluster.sh down    stop everything (PIDs in .yard/run/*.pid): the
#                          gateway, then the workers, then NATS, then PostgreSQL
#   ops/cluster.sh status  one line per process: PID, alive or dead, ports,
#                          readiness (its /readyz, NATS's /healthz, pg_isready);
#                          exit 0 when everything runs and is ready, 3 if not
#
# Ports (override with the environment): YARD_UP_HTTP_PORT=8080,
# YARD_UP_NATS_PORT=4222, YARD_UP_NATS_MON_PORT=8222, YARD_UP_PG_PORT=55432;
# the workers' /metrics ports are YARD_UP_METRICS_PORT_BASE=9101 and the next
# ones, in the order of `roles` (execute 9101, schedule 9102, audit 9103,
# notify 9104).
# `up` records each process's ports and readiness probe in .yard/run/<name>.info,
# so `status` reports what was started whatever the environment is now.
# The data folder is YARD_DATA_DIR (default .yard); the programs are taken
# from YARD_BIN (default bin/, where `make` builds them).
# Logs are in .yard/log/<name>.log (PostgreSQL's in .yard/pg/server.log);
# nats-server reads .yard/nats/nats.conf (max_payload). .yard/env holds
# YARD_URL, YARD_API_KEY, YARD_NATS_URL, YARD_PG_DSN and YARD_NOTIFY_SECRET (the
# key of the webhooks' Yard-Signature) as exported shell
# assignments: after `. .yard/env`, curl examples and yardctl work as they are.
# Locked down: .yard is mode 700, .yard/env and .yard/secrets mode 600.
# PostgreSQL takes scram-sha-256 passwords only (no trust, also not on its
# socket); the `yard` database belongs to yard_owner (not a superuser: it
# migrates, yardctl uses it), and each program logs in as its own role
# (yard_gateway, yard_execute, yard_schedule, yard_notify, yard_audit) whose
# table rights migration 0014 grants. NATS requires a user per program, each
# allowed only the subjects it publishes and subscribes to (nats.conf).
# Passwords are generated once into .yard/secrets and never printed.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

root=$(cd "$(dirname "$0")/.." && pwd)
data=${YARD_DATA_DIR:-$root/.yard}
case $data in /*) ;; *) data=$PWD/$data ;; esac
run=$data/run
logs=$data/log
http_port=${YARD_UP_HTTP_PORT:-8080}
nats_port=${YARD_UP_NATS_PORT:-4222}
nats_mon=${YARD_UP_NATS_MON_PORT:-8222}
pg_port=${YARD_UP_PG_PORT:-55432}
metrics_base=${YARD_UP_METRICS_PORT_BASE:-9101}
bin=${YARD_BIN:-$root/bin}
# The largest message nats-server takes: a job of the largest body the
# gateway accepts (1 MiB) plus its envelope and headers fits (JOBS takes up to
# YARD_JS_MAX_MSG_SIZE, 2 MiB). nats-server's default is 1 MiB.
nats_max_payload=4194304
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
# One worker per role; worker i serves /metrics, /healthz and /readyz on
# metrics_base + i. A new role is one more word here (up, down and status
# follow).
roles=(execute schedule audit notify)

say() { printf 'yard: %s\n' "$*"; }
die() { printf 'yard: error: %s\n' "$*" >&2; exit 1; }

# Every program's PostgreSQL role and NATS user (yardctl: the owner).
programs=(owner gateway execute schedule notify audit)
secrets=$data/secrets

new_password() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# Loads .yard/secrets (PW_<program> and PW_postgres), generating what is
# missing; the file is mode 600 and never printed.
load_secrets() {
    local p changed=0
    # shellcheck disable=SC1090
    [ -f "$secrets" ] && . "$secrets"
    for p in postgres "${programs[@]}"; do
        if [ -z "$(eval "echo \${PW_$p:-}")" ]; then
            eval "PW_$p=$(new_password)"
            changed=1
        fi
    done
    if [ "$changed" -eq 1 ] || [ ! -f "$secrets" ]; then
        (umask 077
         for p in postgres "${programs[@]}"; do
             printf 'PW_%s=%s\n' "$p" "$(eval "echo \$PW_$p")"
         done >"$secrets.tmp")
        mv "$secrets.tmp" "$secrets"
    fi
    chmod 600 "$secrets"
}

pw() { eval "echo \$PW_$1"; }

# The PostgreSQL role of a program (yardctl's is the owner).
pg_role() { echo "yard_$1"; }

pg_dsn() { # program
    echo "postgresql://$(pg_role "$1"):$(pw "$1")@127.0.0.1:$pg_port/yard"
}

nats_url() { # program
    echo "nats://$1:$(pw "$1")@127.0.0.1:$nats_port"
}

# psql as the superuser, password from the environment (never argv).
psql_super() {
    PGPASSWORD=$(pw postgres) psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres "$@"
}

running() { # name -> 0 if its pid file names a live process (not a zombie)
    local f=$run/$1.pid pid state
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ]
}

# Runs a PostgreSQL program as the postgres user when we are root.
# As root, PostgreSQL's tools run as postgres from /: the caller's folder may
# be one postgres cannot enter (a mode-700 temporary clone), and the tools
# would log "could not change directory" (every path given them is absolute).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

wait_http() { # url seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Records what `status` shows for name: its ports (text) and the URL that
# answers 200 when it is ready ("pg:PORT" for PostgreSQL: pg_isready).
record() { # name ports probe
    printf 'ports=%q\nprobe=%q\n' "$2" "$3" >"$run/$1.info"
}

start_bg() { # name ports probe command...
    local name=$1 ports=$2 probe=$3
    shift 3
    if running "$name"; then
        say "$name already running (pid $(cat "$run/$name.pid"))"
        return 0
    fi
    nohup "$@" >>"$logs/$name.log" 2>&1 </dev/null &
    echo $! >"$run/$name.pid"
    record "$name" "$ports" "$probe"
    say "$name started (pid $!, log .yard/log/$name.log)"
}

# The NATS users: one per program. Every one talks to the JetStream API
# (streams, consumers, publish acks) and receives its replies on _INBOX.>,
# but none may delete or purge a stream (yardctl, the operators', may), and
# the gateway may not fetch from a consumer nor ack: it never consumes.
# Only the gateway and yardctl publish jobs (jobs.>) and cancels
# (yard.cancel.>); the schedule role publishes to the execute subjects, the
# execute role to jobs.notify; the workers ack ($JS.ACK.>) and publish
# events and dead letters.
nats_conf() {
    local js_deny='"$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>"'
    cat <<CONF
max_payload: $nats_max_payload
authorization {
  users = [
    {user: gateway, password: "$(pw gateway)", permissions: {
      publish: {allow: ["\$JS.API.>", "jobs.>", "events.>", "dlq.>", "yard.cancel.>"],
                deny: [$js_deny, "\$JS.API.CONSUMER.MSG.NEXT.>", "\$JS.ACK.>"]},
      subscribe: {allow: ["_INBOX.>"]}}}
    {user: execute, password: "$(pw execute)", permissions: {
      publish: {allow: ["\$JS.API.>", "\$JS.ACK.>", "jobs.notify", "events.>", "dlq.>"], deny: [$js_deny]},
      subscribe: {allow: ["_INBOX.>", "yard.cancel.>", "\$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]}}}
    {user: schedule, password: "$(pw schedule)", permissions: {
      publish: {allow: ["\$JS.API.>", "\$JS.ACK.>", "jobs.execute.>", "events.>", "dlq.>"], deny: [$js_deny]},
      subscribe: {allow: ["_INBOX.>", "\$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]}}}
    {user: notify, password: "$(pw notify)", permissions: {
      publish: {allow: ["\$JS.API.>", "\$JS.ACK.>", "events.>", "dlq.>"], deny: [$js_deny]},
      subscribe: {allow: ["_INBOX.>", "\$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]}}}
    {user: audit, password: "$(pw audit)", permissions: {
      publish: {allow: ["\$JS.API.>", "\$JS.ACK.>", "events.>", "dlq.>"], deny: [$js_deny]},
      subscribe: {allow: ["_INBOX.>", "\$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]}}}
    {user: owner, password: "$(pw owner)", permissions: {
      publish: {allow: ["\$JS.API.>", "jobs.>", "events.>", "dlq.>", "yard.cancel.>"]},
      subscribe: {allow: ["_INBOX.>"]}}}
  ]
}
CONF
}

up_nats() {
    mkdir -p "$data/nats"
    # max_payload has no command-line flag: it goes in a config file, with
    # the users and what each may publish and subscribe to.
    (umask 077; nats_conf >"$data/nats/nats.conf")
    start_bg nats "$nats_port (clients), $nats_mon (monitor)" \
        "http://127.0.0.1:$nats_mon/healthz?js-enabled-only=true" \
        nats-server -c "$data/nats/nats.conf" -a 127.0.0.1 -p "$nats_port" \
        -m "$nats_mon" -js -sd "$data/nats"
    wait_http "http://127.0.0.1:$nats_mon/healthz?js-enabled-only=true" 30 ||
        die "nats-server did not become ready; see .yard/log/nats.log"
}

up_postgres() {
    [ -n "$pg_bin" ] || die "PostgreSQL is not installed (run: make deps)"
    local pgdata=$data/pg
    if [ ! -f "$pgdata/PG_VERSION" ]; then
        mkdir -p "$pgdata"
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pgdata" && chmod 700 "$pgdata"
        # scram-sha-256 for every connection, the socket's too (no trust):
        # the superuser's password comes from a file only postgres reads.
        local pwfile=$data/pg.pwfile
        (umask 077; pw postgres >"$pwfile")
        [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$pwfile"
        as_pg "$pg_bin/initdb" -D "$pgdata" -U postgres -A scram-sha-256 --pwfile="$pwfile" \
            -E UTF8 --locale=C >>"$logs/postgres.log" 2>&1 || {
            rm -f "$pwfile"
            die "initdb failed; see .yard/log/postgres.log"
        }
        rm -f "$pwfile"
    fi
    # The shipped settings (ops/postgres/yard.conf), refreshed on every start.
    install -m 644 "$root/ops/postgres/yard.conf" "$pgdata/yard.conf"
    grep -qx "include 'yard.conf'" "$pgdata/postgresql.conf" ||
        echo "include 'yard.conf'" >>"$pgdata/postgresql.conf"
    if ! as_pg "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
        as_pg "$pg_bin/pg_ctl" -D "$pgdata" -w -t 60 -l "$pgdata/server.log" \
            -o "-p $pg_port -k $pgdata -c listen_addresses=127.0.0.1" start >/dev/null ||
            die "PostgreSQL did not start; see $pgdata/server.log"
        say "postgres started on 127.0.0.1:$pg_port"
    else
        say "postgres already running"
    fi
    head -n 1 "$pgdata/postmaster.pid" >"$run/postgres.pid"
    # The port it really listens on (line 4 of postmaster.pid), in case it
    # was already running with another one.
    local listening
    listening=$(sed -n 4p "$pgdata/postmaster.pid")
    record postgres "$listening" "pg:$listening"
    pg_roles_bootstrap
}

# As the superuser (idempotent): the owner of `yard` (no superuser, no
# CREATEROLE; it may grant yard_audit_writer, which migration 0009 needs),
# one LOGIN role per program with its password, the database itself, and
# no CONNECT for anyone else. Table rights are migration 0014's. The SQL,
# passwords included, goes through stdin, never a command line.
pg_roles_bootstrap() {
    local p sql
    sql="SELECT 'CREATE ROLE yard_audit_writer NOLOGIN'
          WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'yard_audit_writer') \\gexec
"
    for p in "${programs[@]}"; do
        sql+="SELECT 'CREATE ROLE $(pg_role "$p")'
          WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$(pg_role "$p")') \\gexec
ALTER ROLE $(pg_role "$p") LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$(pw "$p")';
"
    done
    sql+="GRANT yard_audit_writer TO yard_owner WITH ADMIN OPTION;
SELECT 'CREATE DATABASE yard OWNER yard_owner'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'yard') \\gexec
ALTER DATABASE yard OWNER TO yard_owner;
REVOKE ALL ON DATABASE yard FROM PUBLIC;
"
    printf '%s' "$sql" | psql_super -d postgres -q >>"$logs/postgres.log" 2>&1 ||
        die "creating the database roles failed; see .yard/log/postgres.log"
    # A database migrated by an earlier `make up` (as postgres): its tables
    # and functions go to the owner, so that later migrations can run.
    psql_super -d yard -q >>"$logs/postgres.log" 2>&1 <<'SQL' ||
DO $$
DECLARE
    q text;
BEGIN
    FOR q IN SELECT format('ALTER TABLE public.%I OWNER TO yard_owner', tablename)
               FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'yard_owner'
    LOOP
        EXECUTE q;
    END LOOP;
    FOR q IN SELECT format('ALTER FUNCTION %s OWNER TO yard_owner', p.oid::regprocedure)
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> 'yard_owner'
                AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE q;
    END LOOP;
END
$$;
SQL
        die "handing the tables to yard_owner failed; see .yard/log/postgres.log"
    if as_pg grep -qE '^[^#].*[[:space:]]trust$' "$data/pg/pg_hba.conf"; then
        say "warning: $data/pg was made by an earlier make up and still trusts local connections;"
        say "warning: make down, move $data away and make up again to require passwords"
    fi
}

write_env() {
    local key=${YARD_API_KEY:-} secret=${YARD_ID_SECRET:-} notify=${YARD_NOTIFY_SECRET:-}
    if [ -f "$data/env" ]; then
        # shellcheck disable=SC1091
        key=$(. "$data/env" && echo "${YARD_API_KEY:-}")
        secret=$(. "$data/env" && echo "${YARD_ID_SECRET:-}")
        notify=$(. "$data/env" && echo "${YARD_NOTIFY_SECRET:-}")
    fi
    [ -n "$secret" ] || secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    [ -n "$notify" ] || notify=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    # yardctl and scripts act as the owner (the operators' user).
    export YARD_NATS_URL=$(nats_url owner)
    export YARD_PG_DSN=$(pg_dsn owner)
    export YARD_ID_SECRET=$secret
    export YARD_NOTIFY_SECRET=$notify
    "$bin/yardctl" migrate >/dev/null 2>&1 || die "migrations failed; run $bin/yardctl migrate to see why"
    # The admin key is made once the gateway runs (ensure_admin_key): its
    # key_created event needs the EVENTS stream the gateway creates.
    umask 077
    cat >"$data/env.tmp" <<ENV
export YARD_URL=http://127.0.0.1:$http_port
export YARD_API_KEY=$key
export YARD_NATS_URL=$YARD_NATS_URL
export YARD_PG_DSN=$YARD_PG_DSN
export YARD_ID_SECRET=$secret
export YARD_NOTIFY_SECRET=$notify
ENV
    mv "$data/env.tmp" "$data/env"
    chmod 600 "$data/env"
    umask 022
    export YARD_API_KEY=$key
}

# Makes the local admin API key unless .yard/env names one that exists, and
# records it in .yard/env. Run once the gateway is ready.
ensure_admin_key() {
    local key=${YARD_API_KEY:-}
    if [ -z "$key" ] || ! "$bin/yardctl" keys list 2>/dev/null | grep -q "${key:3:8}"; then
        key=$("$bin/yardctl" keys create --name local-admin --scopes admin --quiet) ||
            die "cannot create the admin API key; run $bin/yardctl keys create to see why"
        local tmp="$data/env.tmp"
        (umask 077 && sed "s|^export YARD_API_KEY=.*|export YARD_API_KEY=$key|" "$data/env" >"$tmp")
        mv "$tmp" "$data/env"
        chmod 600 "$data/env"
        # The gateway reloads keys every few seconds: wait until it takes it.
        local i
        for ((i = 0; i < 150; i++)); do
            curl -fsS -o /dev/null -H "Authorization: Bearer $key" \
                "http://127.0.0.1:$http_port/v1/whoami" 2>/dev/null && break
            sleep 0.1
        done
    fi
    export YARD_API_KEY=$key
}

# Jobs' sealed secrets: one key pair per local cluster, in $data/sealed-secrets
# (mode 600, as `yardctl secrets keygen` prints it). The gateway gets the
# public key, only the execute worker the private one (YARD_SECRETS_* set by
# the caller win).
sealed_keys() {
    local f="$data/sealed-secrets"
    if [ ! -s "$f" ]; then
        (umask 077 && "$bin/yardctl" secrets keygen >"$f") || die "yardctl secrets keygen failed"
    fi
    YARD_SECRETS_PUBLIC_KEY=${YARD_SECRETS_PUBLIC_KEY:-$(awk '$1 == "public_key" {print $2}' "$f")}
    export YARD_SECRETS_PUBLIC_KEY
    sealed_private=${YARD_SECRETS_PRIVATE_KEYS:-$(awk '$1 == "private_key" {print $2}' "$f")}
}

up() {
    mkdir -p "$data"
    # Only the user who runs the cluster may enter .yard; as root,
    # PostgreSQL (the postgres user) must reach its folder in it, so the
    # folder belongs to postgres (root enters it anyway).
    chmod 700 "$data"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$data"
    mkdir -p "$run" "$logs"
    load_secrets
    up_nats
    up_postgres
    write_env
    sealed_keys
    YARD_HTTP_PORT=$http_port YARD_HTTP_ADDR=127.0.0.1 \
        YARD_PG_DSN=$(pg_dsn gateway) YARD_NATS_URL=$(nats_url gateway) \
        start_bg gateway "$http_port (http)" "http://127.0.0.1:$http_port/readyz" \
        "$bin/yard-gateway"
    local i
    for i in "${!roles[@]}"; do
        YARD_PG_DSN=$(pg_dsn "${roles[i]}") YARD_NATS_URL=$(nats_url "${roles[i]}") \
        YARD_SECRETS_PRIVATE_KEYS=$([ "${roles[i]}" = execute ] && echo "$sealed_private") \
            start_bg "worker-${roles[i]}" "$((metrics_base + i)) (metrics)" \
            "http://127.0.0.1:$((metrics_base + i))/readyz" \
            "$bin/yard-worker" --role "${roles[i]}" --metrics-port $((metrics_base + i))
    done
    wait_http "http://127.0.0.1:$http_port/readyz" 30 ||
        die "the gateway is not ready; see .yard/log/gateway.log"
    ensure_admin_key
    say "ready: http://127.0.0.1:$http_port"
    say "admin API key: $YARD_API_KEY"
    say "web console: http://127.0.0.1:$http_port/ui/ (sign in with the key)"
    say "settings for scripts and yardctl: . .yard/env"
    for i in "${!roles[@]}"; do
        wait_http "http://127.0.0.1:$((metrics_base + i))/readyz" 30 ||
            die "worker-${roles[i]} is not ready; see .yard/log/worker-${roles[i]}.log"
        say "worker-${roles[i]} metrics: http://127.0.0.1:$((metrics_base + i))/metrics"
    done
}

# Stops the named processes together: SIGTERM to each, then up to 40 s for
# all of them to exit (a worker drains its jobs first), then SIGKILL.
stop_group() { # name...
    local name i alive stopping=()
    for name in "$@"; do
        if running "$name"; then
            kill -TERM "$(cat "$run/$name.pid")"
            stopping+=("$name")
        else
            rm -f "$run/$name.pid" "$run/$name.info"
        fi
    done
    for ((i = 0; i < 400; i++)); do
        alive=0
        for name in "${stopping[@]}"; do running "$name" && alive=1; done
        [ "$alive" -eq 0 ] && break
        sleep 0.1
    done
    for name in "${stopping[@]}"; do
        running "$name" && kill -KILL "$(cat "$run/$name.pid")"
        say "$name stopped"
        rm -f "$run/$name.pid" "$run/$name.info"
    done
}

# Stops in the order that loses nothing: the gateway (no new jobs), the
# workers (they finish or hand back what they run), anything else, NATS,
# and PostgreSQL last.
down() {
    local f name workers=() others=()
    for f in "$run"/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        case $name in
        gateway | nats | postgres) ;;
        worker-*) workers+=("$name") ;;
        *) others+=("$name") ;;
        esac
    done
    stop_group gateway
    [ "${#workers[@]}" -eq 0 ] || stop_group "${workers[@]}"
    [ "${#others[@]}" -eq 0 ] || stop_group "${others[@]}"
    stop_group nats
    if [ -f "$data/pg/PG_VERSION" ] && as_pg "$pg_bin/pg_ctl" -D "$data/pg" status >/dev/null 2>&1; then
        as_pg "$pg_bin/pg_ctl" -D "$data/pg" -m fast -w stop >/dev/null && say "postgres stopped"
    fi
    rm -f "$run/postgres.pid" "$run/postgres.info"
}

# Whether what name's .info file names answers: "ready", "not ready (...)",
# or "-" when nothing was recorded.
readiness() { # name
    local ports='' probe='' code
    [ -f "$run/$1.info" ] || { echo -; return; }
    # shellcheck disable=SC1090
    . "$run/$1.info"
    case $probe in
    pg:*)
        if pg_isready -q -h 127.0.0.1 -p "${probe#pg:}" -t 2 2>/dev/null; then
            echo ready
        else
            echo "not ready (pg_isready)"
        fi
        ;;
    http*)
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$probe" 2>/dev/null) || true
        if [ "$code" = 200 ]; then echo ready; else echo "not ready (${probe#http://} ${code:-000})"; fi
        ;;
    *) echo - ;;
    esac
}

# One line per process: NAME PID STATE PORTS READY. The processes `up`
# starts come first, in order, even when never started; then any other pid
# file. Returns 0 when every listed process is alive and ready, 3 otherwise.
status() {
    local names=(nats postgres gateway) name f pid state ports ready rc=0 i
    for i in "${!roles[@]}"; do names+=("worker-${roles[i]}"); done
    for f in "$run"/*.pid; do
        [ -e "$f" ] || continue
        name=$(basename "$f" .pid)
        [[ " ${names[*]} " == *" $name "* ]] || names+=("$name")
    done
    printf '%-18s %-8s %-8s %-34s %s\n' NAME PID STATE PORTS READY
    for name in "${names[@]}"; do
        pid=- ports=- ready=-
        if [ -f "$run/$name.pid" ]; then
            pid=$(cat "$run/$name.pid")
            if running "$name"; then state=alive; else state=dead; fi
        else
            state=stopped
        fi
        if [ -f "$run/$name.info" ]; then
            # shellcheck disable=SC1090
            ports=$(. "$run/$name.info" && echo "$ports")
        fi
        [ "$state" = alive ] && ready=$(readiness "$name")
        [ "$state" = alive ] && [ "$ready" = ready ] || rc=3
        printf '%-18s %-8s %-8s %-34s %s\n' "$name" "$pid" "$state" "$ports" "$ready"
    done
    return $rc
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
