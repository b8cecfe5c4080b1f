#!/usr/bin/env bash
# Regenerates tests/fixtures/v0_1_0/: databases written by the released twofactor 0.1.0
# (commit 062f0bf) itself, for the storage-migration tests.
#
#   scripts/make_v010_fixtures.sh
#
# What it does, from a clean machine (root; network for apt and crates.io):
#   1. extracts 062f0bf into $V010_DIR (default /tmp/v010; its target/ is kept between
#      runs) and copies tests/fixtures/v0_1_0/generator.rs in as examples/v010_fixtures.rs;
#   2. builds the 0.1.0 CLI example and the generator there (--locked, features sqlite
#      and postgres, CARGO_TARGET_DIR=$V010_DIR/target);
#   3. starts a throwaway PostgreSQL with scripts/services.sh (install_packages,
#      start_postgres) and creates an empty database in it;
#   4. runs the generator: the library accounts into library.sqlite and, through the same
#      engine calls, into the PostgreSQL database; dumps that with pg_dump;
#   5. drives the 0.1.0 CLI (`cargo run --example cli`) to make cli.db and cli.db.key;
#   6. writes manifest.json, then verifies everything with the 0.1.0 code on copies and
#      on a fresh database restored from library.postgres.sql;
#   7. only then replaces the files in tests/fixtures/v0_1_0/.
#
# Every run makes new random ids, salts, sealed secrets, tokens and backup codes (the
# clock, the key and the imported TOTP secrets are fixed): the manifest always matches
# the files of the same run. README.md and generator.rs in the fixture folder are not
# generated.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMMIT=062f0bf9dc60f47b647c7fa3fd976f2d6aa95fb5
OUT="$ROOT/tests/fixtures/v0_1_0"
V010_DIR="${V010_DIR:-/tmp/v010}"
export CARGO_TARGET_DIR="$V010_DIR/target"
FEATURES=sqlite,postgres
FIXTURE_DB=twofactor_v010_fixture
VERIFY_DB=twofactor_v010_verify

log() { echo "[v010-fixtures] $*" >&2; }

# ---------------------------------------------------------------- 1. extract 0.1.0
log "extracting $COMMIT into $V010_DIR"
mkdir -p "$V010_DIR"
find "$V010_DIR" -mindepth 1 -maxdepth 1 ! -name target -exec rm -rf {} +
git -C "$ROOT" archive "$COMMIT" | tar -x -C "$V010_DIR"
grep -q '^version = "0.1.0"$' "$V010_DIR/Cargo.toml" || { log "not the 0.1.0 tree"; exit 1; }
cp "$OUT/generator.rs" "$V010_DIR/examples/v010_fixtures.rs"

# ---------------------------------------------------------------- 2. build
log "building the 0.1.0 CLI and the generator (features $FEATURES)"
(cd "$V010_DIR" && cargo build --locked --features "$FEATURES" --example cli --example v010_fixtures)
GEN="$CARGO_TARGET_DIR/debug/examples/v010_fixtures"
V010_RUSTC_VERSION="$(cd "$V010_DIR" && rustc --version)"
export V010_RUSTC_VERSION
cli() { # cli UNIX_SECONDS ARGS...: the 0.1.0 CLI with its clock fixed, on the staged cli.db
  local now="$1"; shift
  (cd "$V010_DIR" && TWOFACTOR_CLI_NOW="$now" cargo run -q --locked --features "$FEATURES" --example cli -- \
     --db "$STAGE/cli.db" --outbox "$CLI_WORK/outbox" "$@")
}

# ---------------------------------------------------------------- 3. PostgreSQL
# shellcheck source=services.sh
source "$ROOT/scripts/services.sh"
install_packages
start_postgres
PG_SERVER="${TWOFACTOR_TEST_DATABASE_URL%/*}"
PG_BIN="${TWOFACTOR_PG_BIN:-/usr/lib/postgresql/15/bin}"
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$PG_SERVER/postgres" "$@"; }
psql_admin -c "DROP DATABASE IF EXISTS $FIXTURE_DB" -c "CREATE DATABASE $FIXTURE_DB"

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/twofactor-v010-fixtures.XXXXXX")"
CLI_WORK="$STAGE/cli-work"
mkdir -p "$CLI_WORK"
trap 'rm -rf "$STAGE"; stop_services' EXIT

# ---------------------------------------------------------------- 4. library fixtures
log "library accounts -> library.sqlite + PostgreSQL $FIXTURE_DB"
TWOFACTOR_TEST_DATABASE_URL="$PG_SERVER/$FIXTURE_DB" "$GEN" library \
  --sqlite "$STAGE/library.sqlite" --key "$STAGE/library.key" --manifest "$CLI_WORK/library.json"
"$GEN" finalize-sqlite "$STAGE/library.sqlite"
# pg_dump 15.14+ brackets the dump in \restrict KEY / \unrestrict KEY (psql meta-commands
# that older psql clients do not know); the dump is ours, so those two lines are dropped.
"$PG_BIN/pg_dump" --no-owner --no-privileges "$PG_SERVER/$FIXTURE_DB" \
  | sed -E '/^\\(un)?restrict /d' >"$STAGE/library.postgres.sql"

# ---------------------------------------------------------------- 5. CLI fixtures
CLI_T0=1767700800   # 2026-01-06T12:00:00Z
CLI_ALICE_PASSWORD='cli alice correct horse'
CLI_BOB_PASSWORD='cli bob admin battery'
export CLI_ALICE_PASSWORD CLI_BOB_PASSWORD
log "CLI: add-user alice, add-user bob --role admin, enroll + confirm alice, login --remember"
echo "$CLI_ALICE_PASSWORD" | cli "$CLI_T0" add-user alice --email alice@example.test
echo "$CLI_BOB_PASSWORD" | cli $((CLI_T0 + 10)) add-user bob --email bob@example.test --role admin
cli $((CLI_T0 + 60)) enroll alice >"$CLI_WORK/enroll.out"
URI="$(grep -m1 '^otpauth://' "$CLI_WORK/enroll.out")"
CODE="$("$GEN" totp "$URI" $((CLI_T0 + 90)))"
cli $((CLI_T0 + 90)) confirm alice "$CODE"
CODE="$("$GEN" totp "$URI" $((CLI_T0 + 150)))"
echo "$CLI_ALICE_PASSWORD" | cli $((CLI_T0 + 150)) login alice --code "$CODE" --remember | tee "$CLI_WORK/login.out"
TOKEN="$(sed -n 's/^remember-token: //p' "$CLI_WORK/login.out")"
[ -n "$TOKEN" ] || { log "the CLI printed no remember-token"; exit 1; }
BACKUP_MAIL="$(find "$CLI_WORK/outbox" -name '*-backup_code.setup.eml' | sort | tail -n 1)"
BACKUP="$(grep -Eo '\b[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}\b' "$BACKUP_MAIL" | head -n 1)"
[ -n "$BACKUP" ] || { log "no backup code in $BACKUP_MAIL"; exit 1; }
"$GEN" cli-manifest --library-manifest "$CLI_WORK/library.json" --out "$STAGE/manifest.json" \
  --db "$STAGE/cli.db" --key "$STAGE/cli.db.key" \
  --created-at "$CLI_T0" --enrolled-at $((CLI_T0 + 60)) --confirmed-at $((CLI_T0 + 90)) \
  --login-at $((CLI_T0 + 150)) --now $((CLI_T0 + 300)) \
  --uri "$URI" --token "$TOKEN" --backup-code "$BACKUP" \
  --commands "scripts/make_v010_fixtures.sh step 5: with TWOFACTOR_CLI_NOW set per call, 'add-user alice --email alice@example.test' and 'add-user bob --email bob@example.test --role admin' (passwords on stdin) at created_at and +10, 'enroll alice' at enrolled_at, 'confirm alice CODE' at confirmed_at, 'login alice --code CODE --remember' at login_at (cargo run --example cli -- --db cli.db --outbox DIR ...)"
# After cli-manifest: opening the file with a store (as cli-manifest does) sets WAL again.
"$GEN" finalize-sqlite "$STAGE/cli.db"

# ---------------------------------------------------------------- 6. verify
log "verify: restore library.postgres.sql into a fresh database, check everything on copies"
psql_admin -c "DROP DATABASE IF EXISTS $VERIFY_DB" -c "CREATE DATABASE $VERIFY_DB"
"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -f "$STAGE/library.postgres.sql" "$PG_SERVER/$VERIFY_DB" >/dev/null
"$PG_BIN/psql" -X -A -t -v ON_ERROR_STOP=1 "$PG_SERVER/$VERIFY_DB" -c \
  "SELECT 'restored rows: accounts ' || (SELECT count(*) FROM twofactor_accounts)
       || ', backup codes ' || (SELECT count(*) FROM twofactor_backup_codes)
       || ', locations ' || (SELECT count(*) FROM twofactor_locations)
       || ', schema versions ' || (SELECT count(*) FROM twofactor_schema_version)" >&2
"$GEN" verify --dir "$STAGE" --postgres-url "$PG_SERVER/$VERIFY_DB"
psql_admin -c "DROP DATABASE $VERIFY_DB" -c "DROP DATABASE $FIXTURE_DB"

# ---------------------------------------------------------------- 7. publish
for f in library.sqlite library.key library.postgres.sql cli.db cli.db.key manifest.json; do
  [ -s "$STAGE/$f" ] || { log "missing $f"; exit 1; }
done
for f in library.sqlite cli.db; do   # SQLite header bytes 18-19: 1 1 = rollback journal, 2 2 = WAL
  [ "$(od -An -tu1 -j18 -N2 "$STAGE/$f" | tr -s ' ')" = " 1 1" ] || { log "$f is still in WAL mode"; exit 1; }
done
for suffix in -wal -shm -journal; do
  [ ! -e "$STAGE/library.sqlite$suffix" ] && [ ! -e "$STAGE/cli.db$suffix" ] || { log "leftover $suffix file"; exit 1; }
done
for f in library.sqlite library.key library.postgres.sql cli.db cli.db.key manifest.json; do
  cp "$STAGE/$f" "$OUT/$f"
done
chmod 0644 "$OUT"/library.sqlite "$OUT"/cli.db "$OUT"/library.postgres.sql "$OUT"/manifest.json
chmod 0600 "$OUT"/library.key "$OUT"/cli.db.key
log "done: $(cd "$OUT" && ls -l library.sqlite library.key library.postgres.sql cli.db cli.db.key manifest.json | awk '{print $5, $9}' | tr '\n' ' ')"
