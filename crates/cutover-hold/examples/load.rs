//! A load generator for `bench/hold`: POSTs 1 KB bodies to a URL from
//! CONCURRENCY connections, REQUESTS in all, optionally paced to RATE per
//! second, and prints one JSON line: requests/s and latency percentiles.
//!
//! Usage: load URL REQUESTS CONCURRENCY [RATE]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().collect();
    let url = arguments
        .get(1)
        .ok_or("usage: load URL REQUESTS CONCURRENCY [RATE]")?
        .clone();
    let requests: u64 = arguments.get(2).ok_or("REQUESTS")?.parse()?;
    let concurrency: u64 = arguments.get(3).ok_or("CONCURRENCY")?.parse()?;
    let rate: u64 = arguments.get(4).map_or(Ok(0), |rate| rate.parse())?;
    let body = vec![b'x'; 1024];
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .build()?;
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, body, next, errors) = (
            client.clone(),
            url.clone(),
            body.clone(),
            next.clone(),
            errors.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= requests {
                    return latencies;
                }
                if rate > 0 {
                    // Open-loop pacing: request n is due at n / rate seconds.
                    let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sent = Instant::now();
                match client.post(&url).body(body.clone()).send().await {
                    Ok(answer) if answer.status().is_success() => {
                        let _ = answer.bytes().await;
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{{\"requests\": {}, \"errors\": {}, \"seconds\": {seconds:.3}, \"per_second\": {:.0}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}}}",
            latencies.len(),
            errors.load(Ordering::SeqCst),
            latencies.len() as f64 / seconds,
            percentile(0.50),
            percentile(0.99)
        );
    }
    Ok(())
}
