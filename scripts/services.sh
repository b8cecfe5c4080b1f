# shellcheck shell=bash
# Test services for twofactor: a throwaway PostgreSQL cluster and an SMTP sink.
# Source this file (from .ci/run, scripts/with-services, or your shell), then:
#
#   install_packages   apt: postgresql chromium chromium-driver (skipped when present);
#                      venv ${TWOFACTOR_VENV:-/opt/twofactor-venv} with aiosmtpd
#   start_postgres     exports TWOFACTOR_TEST_DATABASE_URL (TWOFACTOR_PG_DURABLE=1: fsync on)
#   start_smtp         exports TWOFACTOR_TEST_SMTP_URL, TWOFACTOR_TEST_SMTP_MAILDIR
#   stop_services      stops both, removes their temp dirs (safe to call twice)
#   free_port          prints a currently free TCP port on 127.0.0.1
#
# All functions work under `set -euo pipefail`, are idempotent, and return non-zero
# on failure. start_* register stop_services on the shell's EXIT trap (chained in
# front of any EXIT trap already set). Set TWOFACTOR_KEEP_SERVICES_DIR=1 to keep the
# temp dir (logs, maildir) after stop_services. See scripts/README.md.

TWOFACTOR_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TWOFACTOR_PG_BIN="${TWOFACTOR_PG_BIN:-/usr/lib/postgresql/15/bin}"
TWOFACTOR_VENV="${TWOFACTOR_VENV:-/opt/twofactor-venv}"
TWOFACTOR_AIOSMTPD_SPEC="${TWOFACTOR_AIOSMTPD_SPEC:-aiosmtpd==1.4.6}"

_svc_log() { echo "[services] $*" >&2; }

# Python used for helpers and to create the venv: Debian's, else whatever is on PATH.
_svc_python() {
  if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi
}

_svc_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

free_port() {
  "$(_svc_python)" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------- install

_svc_apt_install() {
  local -a apt_opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
  local lists_fresh=0
  # Refresh package lists once per shell, and only if they are missing/stale.
  if [ -z "${_SVC_APT_UPDATED:-}" ]; then
    if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null \
       && [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -360 -print -quit)" ]; then
      lists_fresh=1
    else
      _svc_log "apt-get update"
      _svc_sudo apt-get update -q >&2
      _SVC_APT_UPDATED=1
    fi
  fi
  _svc_log "apt-get install $*"
  if ! _svc_sudo env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "$@" >&2; then
    [ "$lists_fresh" = 1 ] || return 1
    _svc_log "install failed; retrying after apt-get update"
    _svc_sudo apt-get update -q >&2
    _SVC_APT_UPDATED=1
    _svc_sudo env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "$@" >&2
  fi
}

install_packages() {
  local -a pkgs=()
  [ -x "$TWOFACTOR_PG_BIN/initdb" ] || pkgs+=(postgresql)
  [ -x /usr/bin/chromium ] || pkgs+=(chromium)
  [ -x /usr/bin/chromedriver ] || pkgs+=(chromium-driver)
  if [ "${#pkgs[@]}" -gt 0 ]; then
    if [[ " ${pkgs[*]} " == *" postgresql "* ]] && [ ! -e /etc/postgresql-common/createcluster.d/twofactor.conf ]; then
      # Don't let the package create and start the default 'main' cluster on 5432.
      _svc_sudo mkdir -p /etc/postgresql-common/createcluster.d
      echo 'create_main_cluster = false' | _svc_sudo tee /etc/postgresql-common/createcluster.d/twofactor.conf >/dev/null
    fi
    _svc_apt_install "${pkgs[@]}" || { _svc_log "apt-get install failed"; return 1; }
  fi

  if ! "$TWOFACTOR_VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    _svc_log "creating venv $TWOFACTOR_VENV with $TWOFACTOR_AIOSMTPD_SPEC"
    local py made=""
    # Debian's python3 needs python3-venv for ensurepip; fall back to python3 on PATH.
    for py in /usr/bin/python3 "$(command -v python3 || true)"; do
      if [ -z "$py" ] || [ ! -x "$py" ]; then continue; fi
      if "$py" -m venv --clear "$TWOFACTOR_VENV" >&2 2>/dev/null; then made=1; break; fi
    done
    [ -n "$made" ] || { _svc_log "could not create venv $TWOFACTOR_VENV"; return 1; }
    "$TWOFACTOR_VENV/bin/python" -m pip install -q --disable-pip-version-check \
      "$TWOFACTOR_AIOSMTPD_SPEC" >&2 || { _svc_log "pip install aiosmtpd failed"; return 1; }
  fi
}

# ---------------------------------------------------------------- state / cleanup

# One temp root per shell, holding pg/ and smtp/; removed by stop_services.
_svc_root() {
  if [ -z "${_SVC_ROOT:-}" ] || [ ! -d "$_SVC_ROOT" ]; then
    _SVC_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/twofactor-services.XXXXXX")"
    chmod 755 "$_SVC_ROOT"   # postgres must be able to traverse it
  fi
}

# shellcheck disable=SC2120,SC2064  # set -- parses `trap -p`; the old trap is meant to expand now
_svc_register_cleanup() {
  local existing=""
  eval "set -- $(trap -p EXIT)"
  existing="${3:-}"
  case "$existing" in
    *stop_services*) return 0 ;;
    "") trap 'stop_services' EXIT ;;
    *) trap "stop_services; $existing" EXIT ;;
  esac
}

# ---------------------------------------------------------------- postgres

_svc_pg_running() {
  [ -n "${_SVC_PGDATA:-}" ] && [ -f "$_SVC_PGDATA/postmaster.pid" ] \
    && runuser -u postgres -- "$TWOFACTOR_PG_BIN/pg_ctl" -D "$_SVC_PGDATA" status >/dev/null 2>&1
}

start_postgres() {
  if _svc_pg_running && [ -n "${TWOFACTOR_TEST_DATABASE_URL:-}" ]; then return 0; fi
  if [ ! -x "$TWOFACTOR_PG_BIN/initdb" ]; then
    _svc_log "no $TWOFACTOR_PG_BIN/initdb; run install_packages"; return 1
  fi
  if [ "$(id -u)" -ne 0 ]; then
    _svc_log "start_postgres needs root (runuser -u postgres)"; return 1
  fi
  _svc_root
  # shellcheck disable=SC2119
  _svc_register_cleanup
  local dir="$_SVC_ROOT/pg" port="" attempt
  rm -rf "$dir"
  mkdir -p "$dir/data" "$dir/sock"
  chown -R postgres:postgres "$dir"
  chmod 700 "$dir/data"
  _SVC_PGDATA="$dir/data"
  runuser -u postgres -- "$TWOFACTOR_PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -N \
    -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; _svc_log "initdb failed"; return 1; }
  # Tests trade durability for speed; TWOFACTOR_PG_DURABLE=1 keeps PostgreSQL's durable
  # defaults (fsync, synchronous commit), for benchmarks that must not weaken them.
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${TWOFACTOR_PG_DURABLE:-0}" = 1 ] && durability=""
  for attempt in 1 2 3 4 5; do      # retry: the free port may be taken meanwhile
    port="$(free_port)"
    if runuser -u postgres -- "$TWOFACTOR_PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" \
         -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock $durability -c max_connections=200" \
         -w -t 60 start >"$dir/pg_ctl.log" 2>&1; then
      break
    fi
    _svc_log "postgres failed to start on port $port (attempt $attempt)"
    tail -n 5 "$dir/postgres.log" >&2 2>/dev/null || true
    port=""
  done
  [ -n "$port" ] || { _svc_log "could not start postgres"; return 1; }
  _SVC_PGPORT="$port"
  "$TWOFACTOR_PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -c 'CREATE DATABASE twofactor_test' >&2 \
    || { _svc_log "CREATE DATABASE failed"; return 1; }
  export TWOFACTOR_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/twofactor_test"
  _svc_log "postgres ready: $TWOFACTOR_TEST_DATABASE_URL (log: $dir/postgres.log)"
}

# ---------------------------------------------------------------- smtp

_svc_smtp_running() {
  [ -n "${_SVC_SMTP_PID:-}" ] && kill -0 "$_SVC_SMTP_PID" 2>/dev/null
}

start_smtp() {
  if _svc_smtp_running && [ -n "${TWOFACTOR_TEST_SMTP_URL:-}" ]; then return 0; fi
  if ! "$TWOFACTOR_VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    _svc_log "no aiosmtpd in $TWOFACTOR_VENV; run install_packages"; return 1
  fi
  _svc_root
  # shellcheck disable=SC2119
  _svc_register_cleanup
  local dir="$_SVC_ROOT/smtp" port=""
  rm -rf "$dir"
  mkdir -p "$dir/maildir" "$dir/tmp"
  # The sink binds port 0 itself and reports the port: no race with other processes.
  "$TWOFACTOR_VENV/bin/python" "$TWOFACTOR_SCRIPTS_DIR/smtp_sink.py" \
    --host 127.0.0.1 --port 0 --maildir "$dir/maildir" --port-file "$dir/port" \
    </dev/null >"$dir/sink.log" 2>&1 &
  _SVC_SMTP_PID=$!
  for _ in $(seq 1 200); do            # up to ~20 s
    if [ -s "$dir/port" ]; then
      port="$(cat "$dir/port")"
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
      port=""
    fi
    if ! kill -0 "$_SVC_SMTP_PID" 2>/dev/null; then
      cat "$dir/sink.log" >&2; _svc_log "smtp sink died"; _SVC_SMTP_PID=""; return 1
    fi
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$dir/sink.log" >&2; _svc_log "smtp sink did not come up"; return 1; }
  export TWOFACTOR_TEST_SMTP_URL="smtp://127.0.0.1:$port"
  export TWOFACTOR_TEST_SMTP_MAILDIR="$dir/maildir"
  _svc_log "smtp ready: $TWOFACTOR_TEST_SMTP_URL maildir $TWOFACTOR_TEST_SMTP_MAILDIR (log: $dir/sink.log)"
}

# ---------------------------------------------------------------- stop

stop_services() {
  if [ -n "${_SVC_PGDATA:-}" ] && [ -f "$_SVC_PGDATA/postmaster.pid" ]; then
    runuser -u postgres -- "$TWOFACTOR_PG_BIN/pg_ctl" -D "$_SVC_PGDATA" -m fast -w -t 30 stop \
      >/dev/null 2>&1 || {
        _svc_log "pg_ctl stop failed; killing postmaster"
        kill -9 "$(head -n 1 "$_SVC_PGDATA/postmaster.pid" 2>/dev/null)" 2>/dev/null || true
      }
  fi
  _SVC_PGDATA=""
  if _svc_smtp_running; then
    kill -TERM "$_SVC_SMTP_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$_SVC_SMTP_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$_SVC_SMTP_PID" 2>/dev/null || true
    wait "$_SVC_SMTP_PID" 2>/dev/null || true
  fi
  _SVC_SMTP_PID=""
  if [ -n "${_SVC_ROOT:-}" ] && [ -d "$_SVC_ROOT" ]; then
    if [ -n "${TWOFACTOR_KEEP_SERVICES_DIR:-}" ]; then
      _svc_log "kept $_SVC_ROOT"
    else
      rm -rf "$_SVC_ROOT"
    fi
  fi
  _SVC_ROOT=""
  unset TWOFACTOR_TEST_DATABASE_URL TWOFACTOR_TEST_SMTP_URL TWOFACTOR_TEST_SMTP_MAILDIR
  return 0
}
