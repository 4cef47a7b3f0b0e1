# Local object stores for the lake tests. Source this file (after scripts/postgres.sh,
# for free_port), then:
#   ensure_stores  install PyPI's moto[server], and deltalake with pyarrow (the lake tests
#                  write their Delta tables with it), into a venv under ~/.cache/cutover-stores
#                  when missing (Azurite comes with interop/'s npm packages)
#   start_stores   start moto's S3 server and Azurite's blob service on free loopback
#                  ports, in memory; export CUTOVER_TEST_S3_ENDPOINT and
#                  CUTOVER_TEST_AZURE_ENDPOINT (http://127.0.0.1:PORT) once each answers, and
#                  CUTOVER_TEST_LAKE_PYTHON (the venv's python, for interop/delta-fixture.py)
#   stop_stores    stop both by their process ids and remove their temp dir
# Neither holds anything worth keeping: every test makes its own bucket or container.

CUTOVER_MOTO_VERSION=${CUTOVER_MOTO_VERSION:-5.2.5}
CUTOVER_DELTALAKE_VERSION=${CUTOVER_DELTALAKE_VERSION:-1.6.6}
CUTOVER_PYARROW_VERSION=${CUTOVER_PYARROW_VERSION:-26.0.1}
CUTOVER_STORES_VENV=${CUTOVER_STORES_VENV:-$HOME/.cache/cutover-stores/venv-moto-$CUTOVER_MOTO_VERSION-deltalake-$CUTOVER_DELTALAKE_VERSION}

ensure_stores() {
  if [ -x "$CUTOVER_STORES_VENV/bin/moto_server" ] && "$CUTOVER_STORES_VENV/bin/python" -c "import deltalake" 2>/dev/null; then
    return 0
  fi
  echo "installing moto[server] $CUTOVER_MOTO_VERSION and deltalake $CUTOVER_DELTALAKE_VERSION (PyPI) into $CUTOVER_STORES_VENV..." >&2
  python3 -m venv "$CUTOVER_STORES_VENV"
  "$CUTOVER_STORES_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$CUTOVER_MOTO_VERSION" \
    "deltalake==$CUTOVER_DELTALAKE_VERSION" "pyarrow==$CUTOVER_PYARROW_VERSION"
}

# wait_port PORT PID NAME: true once PORT accepts connections, false if PID ends first.
wait_port() {
  for _ in $(seq 1 120); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then break; fi
    sleep 0.25
  done
  echo "$3 did not start; its log:" >&2
  tail -n 20 "$CUTOVER_STORES_DIR/$3.log" >&2
  return 1
}

start_stores() {
  local s3_port azure_port pid
  CUTOVER_STORES_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cutover-stores.XXXXXX")
  export CUTOVER_STORES_DIR
  s3_port=$(free_port)
  "$CUTOVER_STORES_VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$CUTOVER_STORES_DIR/moto.log" 2>&1 &
  pid=$!
  echo "$pid" >"$CUTOVER_STORES_DIR/moto.pid"
  wait_port "$s3_port" "$pid" moto || { stop_stores; return 1; }
  export CUTOVER_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
  azure_port=$(free_port)
  node interop/node_modules/azurite/dist/src/blob/main.js --blobHost 127.0.0.1 --blobPort "$azure_port" \
    --inMemoryPersistence --skipApiVersionCheck --disableProductStyleUrl --silent \
    >"$CUTOVER_STORES_DIR/azurite.log" 2>&1 &
  pid=$!
  echo "$pid" >"$CUTOVER_STORES_DIR/azurite.pid"
  wait_port "$azure_port" "$pid" azurite || { stop_stores; return 1; }
  export CUTOVER_TEST_AZURE_ENDPOINT="http://127.0.0.1:$azure_port"
  export CUTOVER_TEST_LAKE_PYTHON="$CUTOVER_STORES_VENV/bin/python"
}

stop_stores() {
  [ -n "${CUTOVER_STORES_DIR:-}" ] || return 0
  local name pid
  for name in moto azurite; do
    pid=$(cat "$CUTOVER_STORES_DIR/$name.pid" 2>/dev/null || true)
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$CUTOVER_STORES_DIR"
  unset CUTOVER_STORES_DIR CUTOVER_TEST_S3_ENDPOINT CUTOVER_TEST_AZURE_ENDPOINT CUTOVER_TEST_LAKE_PYTHON
}
