#!/usr/bin/env bash
# Runs every test of the workspace against a throwaway PostgreSQL cluster
# (installed if missing, when run as root). Extra arguments go to cargo test,
# e.g. scripts/test.sh -p cutover-db streaming
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
ensure_postgres
start_postgres
trap stop_postgres EXIT
cargo test --workspace "$@"
