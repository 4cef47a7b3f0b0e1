//! Streams every row of a table and reports rows, seconds and rows/s on stderr.
//! Used by bench/stream.sh: `cargo run --release -p cutover-db --example stream_count -- URL#table`.

use std::time::Instant;

use cutover_db::{ConnectOptions, Database, DatabaseUrl, ReadRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = DatabaseUrl::parse(
        &std::env::args()
            .nth(1)
            .ok_or("usage: stream_count URL#table")?,
    )?;
    let database = Database::connect(&url, &ConnectOptions::default()).await?;
    let started = Instant::now();
    let mut rows = database
        .read(&ReadRequest::table(url.require_table()?.clone()).unordered())
        .await?;
    let mut count = 0u64;
    let mut hasher = cutover_db::canonical::RowHasher::new();
    let mut checksum = 0u64;
    while let Some(row) = rows.next().await {
        checksum ^= hasher.hash(&row?);
        count += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "{count} rows in {seconds:.2} s: {:.0} rows/s (checksum {checksum:016x})",
            count as f64 / seconds
        );
    }
    Ok(())
}
