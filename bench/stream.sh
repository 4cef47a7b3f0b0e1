#!/usr/bin/env bash
# Streaming read throughput: cutover-db decoding every row into the value model and hashing its
# canonical encoding, against the floor of PostgreSQL's own binary COPY to /dev/null (psql).
# Usage: bench/stream.sh [ROWS]   (default 5,000,000; starts its own throwaway PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-5000000}
source scripts/postgres.sh
ensure_postgres
start_postgres
trap stop_postgres EXIT
url=$CUTOVER_TEST_POSTGRES_URL
psql -q "$url" -c "CREATE TABLE lab_results AS SELECT g AS result_id, 'MSG-' || g AS message_id,
  (ARRAY['NY','CA','TX','WA'])[1 + g % 4] AS jurisdiction, round((g % 100000) / 7.0, 2)::numeric(12,2) AS value_numeric,
  timestamptz '2026-01-01' + g * interval '1 second' AS specimen_collected_at
  FROM generate_series(1, $rows) g; ALTER TABLE lab_results ADD PRIMARY KEY (result_id);"
psql -q "$url" -c "VACUUM ANALYZE lab_results"
cargo build -q --release -p cutover-db --example stream_count
bin=${CARGO_TARGET_DIR:-target}/release/examples/stream_count
time_of() { local start end; start=$(date +%s.%N); "$@" >/dev/null; end=$(date +%s.%N); echo "$end - $start" | bc; }
floor=$(time_of psql -q "$url" -c "COPY lab_results TO STDOUT (FORMAT binary)")
peak=$( { /usr/bin/time -f "%M" "$bin" "$url#lab_results" 2>&1 >/dev/null; } | tail -n 1)
ours=$(time_of "$bin" "$url#lab_results" 2>/dev/null)
printf 'rows: %s\n' "$rows"
printf 'psql binary COPY to /dev/null (floor): %.2f s\n' "$floor"
printf 'cutover-db stream + canonical hash:    %.2f s  (%.0f rows/s, peak RSS %s MB)\n' "$ours" "$(echo "$rows / $ours" | bc -l)" "$((peak / 1024))"
printf 'ratio cutover / floor: %.2fx\n' "$(echo "$ours / $floor" | bc -l)"
