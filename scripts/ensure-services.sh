#!/usr/bin/env bash
# Makes sure Postgres and Redis answer at DATABASE_URL / REDIS_URL, and that the database named in
# DATABASE_URL exists. If a service does not answer (and its URL points at this machine), starts it:
#   1. with Docker, if the engine runs:          docker compose up -d postgres redis
#   2. else with local binaries:                 a Debian pg_ctlcluster cluster, or initdb/pg_ctl with data
#                                                in .local/pgdata; redis-server with data in .local/redis
#   3. with --install (root + apt-get):          apt-get install postgresql redis-server, then 2.
# Otherwise it stops with exit 1 and says what to install. Safe to run any number of times.
#
# Usage: scripts/ensure-services.sh [--install]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL="$ROOT/.local"
INSTALL=0
for arg in "$@"; do
  case "$arg" in
    --install) INSTALL=1 ;;
    -h | --help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ensure-services: unknown argument: $arg (usage: $0 [--install])" >&2; exit 2 ;;
  esac
done

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/fulfillment_hub}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
WAIT_SECONDS="${ENSURE_SERVICES_WAIT_SECONDS:-30}"

say() { echo "ensure-services: $*"; }
die() { echo "ensure-services: ERROR: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }
# `timeout` is GNU coreutils; without it (stock macOS) run the command as is.
with_timeout() { local secs="$1"; shift; if have timeout; then timeout "$secs" "$@"; else "$@"; fi; }
urldecode() { local s="${1//+/ }"; printf '%b' "${s//%/\\x}"; }

# --- URL parsing: scheme://[user[:password]@]host[:port][/path][?query] ---------------------------
# Sets URL_SCHEME URL_USER URL_PASSWORD URL_HOST URL_PORT URL_PATH URL_QUERY.
parse_url() {
  local url="$1" default_port="$2" rest authority hostport
  URL_SCHEME="${url%%://*}"
  rest="${url#*://}"
  URL_QUERY=""
  if [[ "$rest" == *\?* ]]; then URL_QUERY="${rest#*\?}"; rest="${rest%%\?*}"; fi
  authority="${rest%%/*}"
  if [[ "$rest" == */* ]]; then URL_PATH="${rest#*/}"; else URL_PATH=""; fi
  URL_USER=""; URL_PASSWORD=""
  if [[ "$authority" == *@* ]]; then
    local userinfo="${authority%@*}"
    hostport="${authority##*@}"
    if [[ "$userinfo" == *:* ]]; then
      URL_USER="$(urldecode "${userinfo%%:*}")"; URL_PASSWORD="$(urldecode "${userinfo#*:}")"
    else
      URL_USER="$(urldecode "$userinfo")"
    fi
  else
    hostport="$authority"
  fi
  if [[ "$hostport" == \[*\]* ]]; then                 # [::1]:5432
    URL_HOST="${hostport%%]*}"; URL_HOST="${URL_HOST#[}"
    local after="${hostport#*]}"; URL_PORT="${after#:}"
  elif [[ "$hostport" == *:* ]]; then
    URL_HOST="${hostport%%:*}"; URL_PORT="${hostport##*:}"
  else
    URL_HOST="$hostport"; URL_PORT=""
  fi
  URL_HOST="${URL_HOST:-127.0.0.1}"
  URL_PORT="${URL_PORT:-$default_port}"
  [[ "$URL_PORT" =~ ^[0-9]+$ ]] || die "cannot read a port number from $url"
}

parse_url "$DATABASE_URL" 5432
[[ "$URL_SCHEME" == postgres || "$URL_SCHEME" == postgresql ]] || die "DATABASE_URL must be a postgres:// URL"
PG_HOST="$URL_HOST"; PG_PORT="$URL_PORT"; PG_USER="${URL_USER:-postgres}"; PG_PASSWORD="$URL_PASSWORD"
PG_DB="$(urldecode "${URL_PATH%%/*}")"; PG_DB="${PG_DB:-$PG_USER}"
PG_SSLMODE=""
if [[ "&$URL_QUERY&" =~ \&sslmode=([^\&]+)\& ]]; then PG_SSLMODE="${BASH_REMATCH[1]}"; fi

parse_url "$REDIS_URL" 6379
[[ "$URL_SCHEME" == redis || "$URL_SCHEME" == rediss ]] || die "REDIS_URL must be a redis:// URL"
REDIS_SCHEME="$URL_SCHEME"; REDIS_HOST="$URL_HOST"; REDIS_PORT="$URL_PORT"; REDIS_PASSWORD="$URL_PASSWORD"

is_local() { case "$1" in 127.0.0.1 | localhost | ::1 | 0.0.0.0) return 0 ;; *) return 1 ;; esac; }

# Plain TCP probe, for machines without the client tools.
tcp_open() { with_timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# --- probes -----------------------------------------------------------------------------------------
# postgres_state: up | starting | down
postgres_state() {
  if have pg_isready; then
    local rc=0
    PGCONNECT_TIMEOUT=2 pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -t 2 || rc=$?
    case "$rc" in 0) echo up ;; 1) echo starting ;; *) echo down ;; esac
  elif tcp_open "$PG_HOST" "$PG_PORT"; then
    echo up
  else
    echo down
  fi
}

# redis_state: up | auth (answers, but refuses our credentials) | other (something else on the port) | down
redis_state() {
  local reply=""
  if have redis-cli; then
    local args=(-h "$REDIS_HOST" -p "$REDIS_PORT")
    [[ -n "$REDIS_PASSWORD" ]] && args+=(-a "$REDIS_PASSWORD" --no-auth-warning)
    [[ "$REDIS_SCHEME" == rediss ]] && args+=(--tls)
    reply="$(with_timeout 3 redis-cli "${args[@]}" ping 2>&1 || true)"
  else
    reply="$(with_timeout 3 bash -c '
      exec 3<>/dev/tcp/$0/$1 || exit 0
      if [[ -n "$2" ]]; then printf "AUTH %s\r\n" "$2" >&3; IFS= read -r _ <&3; fi
      printf "PING\r\n" >&3; IFS= read -r line <&3; printf "%s" "${line%$'"'"'\r'"'"'}"
    ' "$REDIS_HOST" "$REDIS_PORT" "$REDIS_PASSWORD" 2>/dev/null || true)"
    reply="${reply#+}"
  fi
  case "$reply" in
    PONG) echo up ;;
    *NOAUTH* | *WRONGPASS* | *"invalid password"* | *"invalid username-password"*) echo auth ;;
    *"Connection refused"* | *"Could not connect"* | "") echo down ;;
    *) echo other ;;
  esac
}

# Polls every 0.2 s until the probe reports `up`, up to WAIT_SECONDS.
wait_until_up() {
  local name="$1" probe="$2" deadline=$((SECONDS + WAIT_SECONDS)) state
  while :; do
    state="$($probe)"
    [[ "$state" == up ]] && return 0
    if ((SECONDS >= deadline)); then
      echo "ensure-services: ERROR: $name did not answer within ${WAIT_SECONDS}s (last state: $state)" >&2
      return 1
    fi
    sleep 0.2
  done
}

# --- ways to start a service -----------------------------------------------------------------------
docker_compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose "$@"
  elif have docker-compose; then
    docker-compose "$@"
  else
    return 127
  fi
}
docker_usable() { have docker && docker info >/dev/null 2>&1 && { docker compose version >/dev/null 2>&1 || have docker-compose; }; }

as_postgres_user() {
  # Runs a command as the `postgres` OS user when we are root (initdb and postgres refuse to run as root).
  if [[ "$(id -u)" -ne 0 ]]; then
    "$@"
  elif have runuser; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

pg_bindir() {
  # Prints the directory of initdb/pg_ctl: PATH first, else the newest /usr/lib/postgresql/*/bin.
  if have initdb && have pg_ctl; then dirname "$(command -v pg_ctl)"; return 0; fi
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]] && echo "$dir"
}

debian_cluster_version() {
  # Prints the version of the Debian cluster `main` that listens on PG_PORT, if there is one.
  have pg_ctlcluster && [[ -d /etc/postgresql ]] || return 1
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | head -1 || true)"
  [[ -n "$version" && -f "/etc/postgresql/$version/main/postgresql.conf" ]] || return 1
  local port
  port="$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' "/etc/postgresql/$version/main/postgresql.conf" | tail -1)"
  [[ "${port:-5432}" == "$PG_PORT" ]] || return 1
  echo "$version"
}

PG_FRESH_INSTALL=0

trust_local_tcp_in_debian_cluster() {
  # Only for a cluster this script has just installed: Debian's default asks a password on TCP, the
  # development URL has none. Local connections only (127.0.0.1 and ::1).
  local hba="/etc/postgresql/$1/main/pg_hba.conf"
  [[ -f "$hba" ]] || return 0
  if ! grep -q 'added by ensure-services' "$hba"; then
    say "fresh install: trusting local TCP connections in $hba (development machine)"
    { printf '# added by ensure-services.sh (development/CI machine)\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'
      cat "$hba"; } >"$hba.new"
    chown --reference="$hba" "$hba.new" 2>/dev/null || true
    chmod --reference="$hba" "$hba.new" 2>/dev/null || true
    mv "$hba.new" "$hba"
  fi
}

start_postgres_locally() {
  local version
  if version="$(debian_cluster_version)"; then
    say "starting Postgres: Debian cluster $version/main (pg_ctlcluster)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>&1 | sed 's/^/  /' \
      || say "pg_ctlcluster reported an error (see /var/log/postgresql/); waiting anyway"
    return 0
  fi
  local bindir
  bindir="$(pg_bindir)" || return 1
  local data="$LOCAL/pgdata" log="$LOCAL/logs/postgres.log"
  mkdir -p "$LOCAL/logs"
  if [[ "$(id -u)" -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || die "initdb cannot run as root and there is no 'postgres' OS user: create one (useradd --system postgres) or run this as a normal user"
  fi
  if [[ ! -f "$data/PG_VERSION" ]]; then
    say "initialising a Postgres data folder in $data (superuser $PG_USER, trust auth, 127.0.0.1:$PG_PORT)"
    mkdir -p "$data"
    chmod 700 "$data"
    if [[ "$(id -u)" -eq 0 ]]; then
      chown postgres "$data"
      as_postgres_user test -w "$data" || die "the postgres OS user cannot reach $data (a parent folder is not searchable): run as a normal user or move the repo"
    fi
    as_postgres_user "$bindir/initdb" -D "$data" -U "$PG_USER" --auth=trust -E UTF8 --no-locale >"$LOCAL/logs/initdb.log" 2>&1 \
      || { tail -20 "$LOCAL/logs/initdb.log" >&2; die "initdb failed (full log: $LOCAL/logs/initdb.log)"; }
    # TCP on loopback only; no Unix socket (its default folder may not be writable for us).
    printf "\n# added by ensure-services.sh\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" >>"$data/postgresql.conf"
  fi
  [[ "$(id -u)" -eq 0 ]] && { touch "$log"; chown postgres "$log"; }
  say "starting Postgres from $data on 127.0.0.1:$PG_PORT (pg_ctl, log $log)"
  as_postgres_user "$bindir/pg_ctl" -D "$data" -l "$log" -o "-p $PG_PORT" -W start >/dev/null \
    || { tail -20 "$log" >&2 || true; die "pg_ctl could not start Postgres (log: $log)"; }
}

start_redis_locally() {
  have redis-server || return 1
  local dir="$LOCAL/redis"
  mkdir -p "$dir" "$LOCAL/logs"
  local args=(--daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" --save "" --appendonly no
    --maxmemory-policy noeviction --logfile "$LOCAL/logs/redis.log" --pidfile "$dir/redis-$REDIS_PORT.pid")
  [[ -n "$REDIS_PASSWORD" ]] && args+=(--requirepass "$REDIS_PASSWORD")
  say "starting Redis on 127.0.0.1:$REDIS_PORT (redis-server --daemonize, log $LOCAL/logs/redis.log)"
  redis-server "${args[@]}" >/dev/null || die "redis-server did not start (log: $LOCAL/logs/redis.log)"
}

apt_install() {
  local packages=("$@")
  ((${#packages[@]})) || return 0
  [[ "$(id -u)" -eq 0 ]] || die "--install needs root to run apt-get (missing: ${packages[*]})"
  have apt-get || die "--install needs apt-get (missing: ${packages[*]})"
  say "installing ${packages[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
}

install_hint() {
  cat >&2 <<EOF
ensure-services: ERROR: cannot start $1 (nothing answers at $2, no Docker engine, no local binaries).
  Install one of:
    - Docker (then: docker compose up -d postgres redis)
    - Debian/Ubuntu: sudo apt-get install -y postgresql redis-server   (or rerun as root: $0 --install)
    - macOS:         brew install postgresql@16 redis
EOF
  exit 1
}

# --- main -------------------------------------------------------------------------------------------
pg="$(postgres_state)"
rd="$(redis_state)"
[[ "$pg" == starting ]] && { wait_until_up "Postgres at $PG_HOST:$PG_PORT" postgres_state || exit 1; pg=up; }
[[ "$rd" == auth ]] && die "Redis at $REDIS_HOST:$REDIS_PORT answers but refuses the credentials in REDIS_URL"
[[ "$rd" == other ]] && die "something other than Redis answers at $REDIS_HOST:$REDIS_PORT (check REDIS_URL)"

if [[ "$pg" == up ]]; then say "Postgres answers at $PG_HOST:$PG_PORT"; fi
if [[ "$rd" == up ]]; then say "Redis answers at $REDIS_HOST:$REDIS_PORT"; fi

missing=()
[[ "$pg" == up ]] || missing+=(postgres)
[[ "$rd" == up ]] || missing+=(redis)

if ((${#missing[@]})); then
  for svc in "${missing[@]}"; do
    if [[ "$svc" == postgres ]] && ! is_local "$PG_HOST"; then
      die "Postgres does not answer at $PG_HOST:$PG_PORT, which is not this machine: start it there or fix DATABASE_URL"
    fi
    if [[ "$svc" == redis ]] && ! is_local "$REDIS_HOST"; then
      die "Redis does not answer at $REDIS_HOST:$REDIS_PORT, which is not this machine: start it there or fix REDIS_URL"
    fi
  done

  if docker_usable; then
    say "starting ${missing[*]} with docker compose (ports: postgres $PG_PORT, redis $REDIS_PORT)"
    (cd "$ROOT" && POSTGRES_PORT="$PG_PORT" REDIS_PORT="$REDIS_PORT" docker_compose up -d "${missing[@]}")
  else
    if ((INSTALL)); then
      need=()
      if [[ " ${missing[*]} " == *" postgres "* ]] && ! debian_cluster_version >/dev/null && ! pg_bindir >/dev/null; then
        need+=(postgresql); PG_FRESH_INSTALL=1
      fi
      if [[ " ${missing[*]} " == *" redis "* ]] && ! have redis-server; then need+=(redis-server); fi
      apt_install "${need[@]}"
      if ((PG_FRESH_INSTALL)) && version="$(debian_cluster_version)"; then
        trust_local_tcp_in_debian_cluster "$version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main reload >/dev/null 2>&1 || true
      fi
      # apt's post-install scripts may already have started the services.
      [[ " ${missing[*]} " == *" postgres "* && "$(postgres_state)" == up ]] && { say "Postgres answers after install"; missing=("${missing[@]/postgres/}"); }
      [[ " ${missing[*]} " == *" redis "* && "$(redis_state)" == up ]] && { say "Redis answers after install"; missing=("${missing[@]/redis/}"); }
    fi
    for svc in "${missing[@]}"; do
      case "$svc" in
        postgres) start_postgres_locally || install_hint Postgres "$PG_HOST:$PG_PORT" ;;
        redis) start_redis_locally || install_hint Redis "$REDIS_HOST:$REDIS_PORT" ;;
        "") ;;
      esac
    done
  fi

  if [[ "$pg" != up ]]; then wait_until_up "Postgres at $PG_HOST:$PG_PORT" postgres_state || exit 1; say "Postgres answers at $PG_HOST:$PG_PORT"; fi
  if [[ "$rd" != up ]]; then wait_until_up "Redis at $REDIS_HOST:$REDIS_PORT" redis_state || exit 1; say "Redis answers at $REDIS_HOST:$REDIS_PORT"; fi
fi

# --- the database named in DATABASE_URL -------------------------------------------------------------
if ! have psql; then
  say "psql not found: cannot check that database '$PG_DB' exists (docker compose creates it; else create it yourself)"
  exit 0
fi
export PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5
[[ -n "$PG_SSLMODE" ]] && export PGSSLMODE="$PG_SSLMODE"
psql_maint() { psql -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres "$@"; }
db_literal="${PG_DB//\'/\'\'}"
db_ident="\"${PG_DB//\"/\"\"}\""

if ! exists="$(psql_maint -tAc "select 1 from pg_database where datname = '$db_literal'" 2>&1)"; then
  die "cannot query Postgres at $PG_HOST:$PG_PORT as '$PG_USER': ${exists//$'\n'/ }"
fi
if [[ "$exists" == 1 ]]; then
  say "database '$PG_DB' exists"
else
  say "creating database '$PG_DB'"
  if ! out="$(psql_maint -c "create database $db_ident" 2>&1)"; then
    # Another process may have created it meanwhile.
    [[ "$(psql_maint -tAc "select 1 from pg_database where datname = '$db_literal'" 2>/dev/null)" == 1 ]] \
      || die "could not create database '$PG_DB': ${out//$'\n'/ }"
  fi
  say "database '$PG_DB' created"
fi
