#!/usr/bin/env bash
# Runs every test of the workspace against a throwaway PostgreSQL cluster
# (installed if missing, when run as root), one local Spark Connect server
# (PyPI's pyspark in a venv under ~/.cache/cutover-spark, Java installed if
# missing, when run as root), and with the npm peers of the interop tests
# (Node.js installed if missing, when run as root), tuspy in interop/.venv,
# and Debian's Chromium for the report and console tests (when root; the
# console test drives it with playwright-core and signs in at npm's
# oidc-provider); and two object
# stores on loopback for the lake tests: moto's S3 server (PyPI, in a venv
# under ~/.cache/cutover-stores) and Azurite (npm, with the interop peers).
# Extra arguments go to cargo test, e.g. scripts/test.sh -p cutover-db streaming
set -euo pipefail
cd "$(dirname "$0")/.."
# apt_install PACKAGE...: as root on Debian, installs what is missing (the
# package lists are refreshed once if the first try fails).
apt_install() {
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 0
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
# Headless Chromium renders the evidence reports and drives the console in the tests.
command -v chromium >/dev/null 2>&1 || apt_install chromium
if command -v npm >/dev/null 2>&1 && { [ ! -d interop/node_modules/tus-js-client ] || [ ! -d interop/node_modules/@tus/server ] || [ ! -d interop/node_modules/graphql ] || [ ! -d interop/node_modules/azurite ] || [ ! -d interop/node_modules/oidc-provider ] || [ ! -d interop/node_modules/playwright-core ]; }; then
  npm ci --prefix interop --no-audit --no-fund --loglevel=error
fi
# tuspy (PyPI) for the Python interop test, in a venv of its own.
if [ ! -x interop/.venv/bin/python ] || ! interop/.venv/bin/python -c "import tusclient" 2>/dev/null; then
  python3 -m venv interop/.venv
  interop/.venv/bin/pip install --quiet --disable-pip-version-check -r interop/requirements.txt
fi
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
# shellcheck source=scripts/spark.sh
source scripts/spark.sh
# shellcheck source=scripts/stores.sh
source scripts/stores.sh
ensure_postgres
ensure_spark
ensure_stores
start_postgres
trap 'stop_stores; stop_spark; stop_postgres' EXIT
start_spark
start_stores
cargo test --workspace "$@"
