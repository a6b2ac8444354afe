#!/usr/bin/env bash
# One-command demo on a fresh clone: installs dependencies if needed, makes sure Postgres and Redis run,
# applies migrations, starts the partner simulators, web, worker and scheduler (logs in .local/logs/),
# waits until the hub is ready, pushes one cash-on-delivery order from 3000 to 7500 with all three tiers
# done (scripts/demo-order.ts: Slick fulfils it to 7000, PMP assigns a partner and MAO is told it shipped,
# Grab carries it, PMP delivers it to 7500 and collects the cash, relayed to Slick) and keeps everything
# running until Ctrl-C, which stops it all.
#
# Usage: scripts/quickstart.sh [--no-wait]
#   --no-wait   stop everything and exit right after the demo (exit code = the demo's)
# Env: PORT (hub, 3000), DATABASE_URL, REDIS_URL, SIM_SLICK_PORT .. SIM_INCIDENT_PORT (4101..4106).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

NO_WAIT=0
for arg in "$@"; do
  case "$arg" in
    --no-wait) NO_WAIT=1 ;;
    -h | --help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown argument: $arg (usage: $0 [--no-wait])" >&2; exit 2 ;;
  esac
done

say() { echo "quickstart: $*"; }
die() { echo "quickstart: ERROR: $*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

LOGS="$ROOT/.local/logs"
PORT="${PORT:-3000}"
HUB_URL="http://127.0.0.1:$PORT"
SIM_SLICK_PORT="${SIM_SLICK_PORT:-4101}"
SIM_PMP_PORT="${SIM_PMP_PORT:-4102}"
SIM_MAO_PORT="${SIM_MAO_PORT:-4103}"
SIM_GRAB_PORT="${SIM_GRAB_PORT:-4104}"
SIM_NOTIFY_PORT="${SIM_NOTIFY_PORT:-4105}"
SIM_INCIDENT_PORT="${SIM_INCIDENT_PORT:-4106}"
READY_DEADLINE_SECONDS=60

port_busy() {
  if have timeout; then timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; else bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; fi
}
who_listens() { have ss && ss -ltnpH "sport = :$1" 2>/dev/null | sed -nE 's/.*users:\(\("([^"]+)",pid=([0-9]+).*/ (\1, pid \2)/p' | head -1; }

# --- preflight --------------------------------------------------------------------------------------
have node || die "node is not installed: install Node.js 20.19 or newer (https://nodejs.org)"
have npm || die "npm is not installed (it comes with Node.js)"

if port_busy "$PORT"; then
  die "port $PORT is busy$(who_listens "$PORT"): stop what runs there (or set PORT=... for another port)"
fi
for pair in "slick:$SIM_SLICK_PORT" "pmp:$SIM_PMP_PORT" "mao:$SIM_MAO_PORT" "grab:$SIM_GRAB_PORT" "notify:$SIM_NOTIFY_PORT" "incident:$SIM_INCIDENT_PORT"; do
  name="${pair%%:*}"; p="${pair#*:}"
  if port_busy "$p"; then
    die "port $p for the $name simulator is busy$(who_listens "$p"): stop what runs there, or pick free ports with SIM_$(echo "$name" | tr "[:lower:]" "[:upper:]")_PORT=..."
  fi
done

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing dependencies (npm ci)"
  npm ci --no-audit --no-fund
else
  say "dependencies are up to date (node_modules)"
fi
TSX="$ROOT/node_modules/.bin/tsx"
[[ -x "$TSX" ]] || die "node_modules/.bin/tsx is missing: run npm ci"

"$ROOT/scripts/ensure-services.sh"

mkdir -p "$LOGS"
say "applying migrations and seeding store locations (log: .local/logs/release.log)"
if ! "$TSX" src/db/release.ts >"$LOGS/release.log" 2>&1; then
  tail -20 "$LOGS/release.log" >&2
  die "release failed (full log: .local/logs/release.log)"
fi

# --- the processes ----------------------------------------------------------------------------------
# The hub talks to the simulators (Slick requires this token from the hub, as the real one would).
export PORT SIM_SLICK_PORT SIM_PMP_PORT SIM_MAO_PORT SIM_GRAB_PORT SIM_NOTIFY_PORT SIM_INCIDENT_PORT
export SLICK_BASE_URL="http://127.0.0.1:$SIM_SLICK_PORT"
export SLICK_API_TOKEN="dev-slick-token"
export PMP_BASE_URL="http://127.0.0.1:$SIM_PMP_PORT"
export MAO_BASE_URL="http://127.0.0.1:$SIM_MAO_PORT"
export GRAB_BASE_URL="http://127.0.0.1:$SIM_GRAB_PORT"
export NOTIFY_WEBHOOK_URL="http://127.0.0.1:$SIM_NOTIFY_PORT/"
export INCIDENT_WEBHOOK_URL="http://127.0.0.1:$SIM_INCIDENT_PORT/"
export HUB_URL
# Shorter than production so the partner-outage walk-through (npm run outage) takes seconds, not minutes.
export CIRCUIT_OPEN_MS="${CIRCUIT_OPEN_MS:-5000}"
export CIRCUIT_FAILURE_THRESHOLD="${CIRCUIT_FAILURE_THRESHOLD:-3}"
export HEALTH_PROBE_INTERVAL_MS="${HEALTH_PROBE_INTERVAL_MS:-5000}"

NAMES=()
PIDS=()

start() {
  local name="$1"; shift
  # Each child gets its own session/process group: Ctrl-C reaches only this script, which then stops the
  # children in order (web first, simulators last).
  if have setsid; then
    setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  else
    "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  fi
  NAMES+=("$name")
  PIDS+=("$!")
  say "started $name (pid $!, log .local/logs/$name.log)"
}

alive() { kill -0 "$1" 2>/dev/null; }

stop_children() {
  ((${#PIDS[@]})) || return 0
  say "stopping ${NAMES[*]}"
  local i pid
  # Reverse start order: scheduler, worker, web, simulators.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    alive "${PIDS[$i]}" && kill -TERM "${PIDS[$i]}" 2>/dev/null || true
  done
  local deadline=$((SECONDS + 30))
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
      say "${NAMES[$i]} (pid $pid) did not stop within 30 s: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    # Anything its process group left behind.
    have setsid && kill -KILL -- "-$pid" 2>/dev/null || true
  done
  PIDS=()
  NAMES=()
  say "all stopped"
}

log_tails() {
  local name
  for name in "${NAMES[@]}"; do
    echo "----- .local/logs/$name.log (last 15 lines) -----" >&2
    tail -15 "$LOGS/$name.log" >&2 || true
  done
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  stop_children
  exit "$rc"
}
trap on_exit EXIT
trap 'echo; say "interrupted"; exit 0' INT TERM

first_dead() {
  local i
  for i in "${!PIDS[@]}"; do
    alive "${PIDS[$i]}" || { echo "${NAMES[$i]}"; return 0; }
  done
  return 1
}

start simulators "$TSX" src/simulators/main.ts
start web "$TSX" src/api/main.ts
start worker "$TSX" src/workers/main.ts
start scheduler "$TSX" src/workers/scheduler.main.ts

http_status() {
  if have curl; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
  else
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => console.log(r.status), () => console.log(0))' "$1"
  fi
}

say "waiting for $HUB_URL/api/health/ready (up to ${READY_DEADLINE_SECONDS}s)"
deadline=$((SECONDS + READY_DEADLINE_SECONDS))
while :; do
  if dead="$(first_dead)"; then
    log_tails
    die "$dead exited during start-up (see its log above)"
  fi
  [[ "$(http_status "$HUB_URL/api/health/ready")" == 200 ]] && port_busy "$SIM_SLICK_PORT" && break
  if ((SECONDS >= deadline)); then
    log_tails
    die "the hub was not ready within ${READY_DEADLINE_SECONDS}s (logs above)"
  fi
  sleep 0.5
done
say "hub ready at $HUB_URL"

say "demo: one COD order 3000 → 7000 (Slick ship events; PMP assignment, MAO told shipped) → 7500 (Grab courier statuses, PMP delivered and cod.collected), then its three tiers"
echo
demo_rc=0
"$TSX" scripts/demo-order.ts || demo_rc=$?
echo

if ((NO_WAIT)); then
  ((demo_rc == 0)) || log_tails
  exit "$demo_rc"
fi

admin_key="$(sed -nE "s/.*role: 'admin', key: '([^']+)'.*/\1/p" src/config.ts | head -1)"
((demo_rc == 0)) || say "the demo failed (above); everything keeps running so you can look (logs in .local/logs/)"
cat <<EOF
quickstart: everything runs:
  hub API      $HUB_URL   (health: $HUB_URL/api/health/ready, metrics: $HUB_URL/metrics)
  Bull Board   $HUB_URL/admin/queues   (Basic auth: any user name, password ${admin_key:-the admin key of DEVELOPMENT_CLIENTS in src/config.ts})
  simulators   Slick :$SIM_SLICK_PORT  PMP :$SIM_PMP_PORT  MAO :$SIM_MAO_PORT  Grab :$SIM_GRAB_PORT  notify :$SIM_NOTIFY_PORT  incident :$SIM_INCIDENT_PORT
  logs         .local/logs/{simulators,web,worker,scheduler}.log
  another demo order:  npx tsx scripts/demo-order.ts
Press Ctrl-C to stop everything.
EOF

while :; do
  if dead="$(first_dead)"; then
    log_tails
    die "$dead exited unexpectedly (see its log above); stopping the rest"
  fi
  sleep 1
done
