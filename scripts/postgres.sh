# Throwaway PostgreSQL for tests. Source this file, then:
#   ensure_postgres   install PostgreSQL if it is missing (root only; Debian packages)
#   start_postgres    start a private cluster in a temp dir, export CUTOVER_TEST_POSTGRES_URL
#   stop_postgres     stop it and remove the temp dir
# The cluster listens on 127.0.0.1 on a free private port and on a socket in
# its own directory, offers TLS with a certificate from a private CA (exported as
# CUTOVER_TEST_POSTGRES_CA), trusts local connections (one role, cutover_auth, needs
# a password so that authentication failures can be tested) and runs with
# fsync off: it holds nothing worth keeping.

postgres_bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return 0; fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return 0; fi
  return 1
}

ensure_postgres() {
  if postgres_bindir >/dev/null && command -v openssl >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL server binaries (initdb) not found; install PostgreSQL (e.g. apt-get install postgresql) and re-run" >&2
    return 1
  fi
  echo "installing PostgreSQL (Debian packages)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq postgresql openssl >/dev/null
  postgres_bindir >/dev/null
}

# Runs a command as the postgres user when we are root (initdb refuses root).
as_postgres_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$(( 20000 + RANDOM % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  return 1
}

make_test_certificates() {
  local dir=$1
  openssl req -x509 -newkey rsa:2048 -nodes -days 3 -subj "/CN=cutover test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1 || return 1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1 || return 1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3 -extfile "$dir/server.ext" -out "$dir/server.crt" >/dev/null 2>&1 || return 1
}

start_postgres() {
  local bindir port
  bindir=$(postgres_bindir) || { echo "PostgreSQL not found" >&2; return 1; }
  CUTOVER_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cutover-pg.XXXXXX")
  export CUTOVER_PG_DIR CUTOVER_PG_BINDIR="$bindir"
  mkdir -p "$CUTOVER_PG_DIR/socket"
  # A private CA and a server certificate for localhost and 127.0.0.1, so that TLS modes can be tested.
  make_test_certificates "$CUTOVER_PG_DIR" || { echo "could not make test certificates with openssl" >&2; return 1; }
  chmod 600 "$CUTOVER_PG_DIR/server.key"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$CUTOVER_PG_DIR"; fi
  as_postgres_owner "$bindir/initdb" -D "$CUTOVER_PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$CUTOVER_PG_DIR/initdb.log" 2>&1 \
    || as_postgres_owner "$bindir/initdb" -D "$CUTOVER_PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$CUTOVER_PG_DIR/initdb.log" 2>&1 \
    || { cat "$CUTOVER_PG_DIR/initdb.log" >&2; return 1; }
  # One role must give a password, so that a wrong one can be tested.
  { echo "host all cutover_auth 127.0.0.1/32 scram-sha-256"; cat "$CUTOVER_PG_DIR/data/pg_hba.conf"; } >"$CUTOVER_PG_DIR/hba.tmp"
  cat "$CUTOVER_PG_DIR/hba.tmp" >"$CUTOVER_PG_DIR/data/pg_hba.conf"
  port=$(free_port)
  as_postgres_owner "$bindir/pg_ctl" -D "$CUTOVER_PG_DIR/data" -l "$CUTOVER_PG_DIR/server.log" -w -t 60 start \
    -o "-p $port -k $CUTOVER_PG_DIR/socket -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$CUTOVER_PG_DIR/server.crt -c ssl_key_file=$CUTOVER_PG_DIR/server.key" >/dev/null \
    || { cat "$CUTOVER_PG_DIR/server.log" >&2; return 1; }
  export CUTOVER_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export CUTOVER_TEST_POSTGRES_CA="$CUTOVER_PG_DIR/ca.crt"
  echo "test PostgreSQL running at $CUTOVER_TEST_POSTGRES_URL ($("$bindir/postgres" --version))" >&2
}

stop_postgres() {
  if [ -n "${CUTOVER_PG_DIR:-}" ] && [ -d "$CUTOVER_PG_DIR/data" ]; then
    as_postgres_owner "$CUTOVER_PG_BINDIR/pg_ctl" -D "$CUTOVER_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$CUTOVER_PG_DIR"
  fi
}
