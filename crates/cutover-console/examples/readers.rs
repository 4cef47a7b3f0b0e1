//! The console's load generator for `bench/console`.
//!
//! `readers seed JOURNAL RECORDS [RUNS]`: writes a run of RECORDS journal
//! records (a runbook of 40 steps, each started and finished, then more
//! records) and prints its id; with RUNS, RUNS - 1 finished runs of the same
//! runbook come first (81 records each, one a diff step with its
//! reconciliation figures, for the index's trend).
//!
//! `readers load URL JOURNAL RUN READERS UPDATES PAGES`: times PAGES loads
//! of the run's page, and the index's first load (every run, and the
//! trend) and PAGES loads after it; then opens READERS event streams of
//! the run, appends UPDATES records to the journal (a second apart), and
//! measures for each the time from its commit to its arrival at every
//! reader. Prints the figures as `name value` lines.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A line of the answer, on stdout.
macro_rules! say {
    ($($arg:tt)*) => {{
        #[allow(clippy::print_stdout)]
        {
            println!($($arg)*);
        }
    }};
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn address(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .replace("localhost", "127.0.0.1")
}

async fn get(url: &str, path: &str) -> usize {
    let mut stream = tokio::net::TcpStream::connect(address(url))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.expect("read");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "the page answered {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    answer.len()
}

/// A finished run of `steps`, the last a diff step with its figures.
fn finished_run(journal: &mut cutover_run::Journal, number: usize, steps: &[String]) {
    let run = cutover_run::RunInfo {
        id: format!("earlier-run-{number:04}"),
        runbook: "bench".to_owned(),
        path: "bench.toml".to_owned(),
        dir: format!("earlier-run-{number:04}"),
        started_at: format!(
            "2026-11-{:02}T06:{:02}:00.000Z",
            1 + number / 60 % 28,
            number % 60
        ),
        status: "finished".to_owned(),
    };
    journal.create_run(&run).expect("run");
    let detail = serde_json::json!({"runbook": "bench", "steps": steps});
    journal
        .append(&run.id, "", "run-started", &detail)
        .expect("append");
    for (index, step) in steps.iter().enumerate() {
        let started = serde_json::json!({"kind": "check"});
        journal
            .append(&run.id, step, "step-started", &started)
            .expect("append");
        let evidence = if index + 1 == steps.len() {
            let changed = 1_000 + number as u64;
            serde_json::json!({"difference_rate": changed as f64 / 1e6, "summary": {
                "missing": 10, "extra": 5, "changed": changed, "source_rows": 1_000_000}})
        } else {
            serde_json::json!({"value": 0})
        };
        let finished = serde_json::json!({"outcome": "passed", "summary": "the check answered 0", "seconds": 0.25, "evidence": evidence});
        journal
            .append(&run.id, step, "step-finished", &finished)
            .expect("append");
    }
}

fn seed(journal: &str, records: usize, runs: usize) {
    let mut journal = cutover_run::Journal::open(std::path::Path::new(journal)).expect("journal");
    let steps: Vec<String> = (0..40).map(|step| format!("step-{step:02}")).collect();
    for number in 1..runs {
        finished_run(&mut journal, number, &steps);
    }
    let run = cutover_run::RunInfo {
        id: "bench-run".to_owned(),
        runbook: "bench".to_owned(),
        path: "bench.toml".to_owned(),
        dir: "bench-run".to_owned(),
        started_at: "2026-12-02T06:00:00.000Z".to_owned(),
        status: "running".to_owned(),
    };
    journal.create_run(&run).expect("run");
    journal
        .append(
            &run.id,
            "",
            "run-started",
            &serde_json::json!({"runbook": "bench", "steps": steps}),
        )
        .expect("append");
    let mut written = 1;
    while written < records {
        let step = &steps[(written / 2) % steps.len()];
        let (event, detail) = if written % 2 == 1 {
            ("step-started", serde_json::json!({"kind": "check"}))
        } else {
            (
                "step-finished",
                serde_json::json!({"outcome": "passed", "summary": "the check answered 0", "seconds": 0.25, "evidence": {"value": 0}}),
            )
        };
        journal
            .append(&run.id, step, event, &detail)
            .expect("append");
        written += 1;
    }
    say!("{}", run.id);
}

async fn load(url: &str, journal: &str, run: &str, readers: usize, updates: usize, pages: usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..pages {
        let started = Instant::now();
        size = get(url, &format!("/runs/{run}")).await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    say!("page_bytes {size}");
    say!("page_ms_p50 {:.2}", percentile(&times, 0.5));
    say!("page_ms_p99 {:.2}", percentile(&times, 0.99));
    // The first load of the index reads every run; later ones only what
    // changed since.
    let started = Instant::now();
    get(url, "/").await;
    say!(
        "index_first_ms {:.2}",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let mut times = Vec::new();
    for _ in 0..pages {
        let started = Instant::now();
        size = get(url, "/").await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    say!("index_bytes {size}");
    say!("index_ms_p50 {:.2}", percentile(&times, 0.5));
    say!("index_ms_p99 {:.2}", percentile(&times, 0.99));

    let (sender, mut received) = tokio::sync::mpsc::unbounded_channel::<(i64, Instant)>();
    let connecting = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let sender = sender.clone();
        let address = address(url);
        let path = format!("/runs/{run}/events");
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        tasks.push(tokio::spawn(async move {
            let mut buffer = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let Ok(read) = stream.read(&mut chunk).await else {
                    return;
                };
                if read == 0 {
                    return;
                }
                let now = Instant::now();
                buffer.extend_from_slice(&chunk[..read]);
                // Each update says "journal record N." once.
                let text = String::from_utf8_lossy(&buffer).into_owned();
                let mut rest = text.as_str();
                while let Some(at) = rest.find("journal record ") {
                    let after = &rest[at + 15..];
                    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(seq) = digits.parse() {
                        let _ = sender.send((seq, now));
                    }
                    rest = &after[digits.len()..];
                }
                let keep = text.rfind("\n\n").map_or(0, |end| end + 2);
                buffer.drain(..keep.min(buffer.len()));
            }
        }));
    }
    drop(sender);
    // Every reader's first update (the run as it stands) before timing updates.
    let mut first = 0;
    while first < readers {
        match tokio::time::timeout(Duration::from_secs(30), received.recv()).await {
            Ok(Some(_)) => first += 1,
            _ => panic!("{first} of {readers} readers had their first update within 30 s"),
        }
    }
    say!(
        "connect_all_ms {:.1}",
        connecting.elapsed().as_secs_f64() * 1000.0
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    while received.try_recv().is_ok() {}
    let journal_path = std::path::PathBuf::from(journal);
    let mut journal = cutover_run::Journal::open_existing(&journal_path).expect("journal");
    let mut latencies = Vec::new();
    let mut appends = Vec::new();
    for update in 0..updates {
        let started = Instant::now();
        let record = journal
            .append(
                run,
                "step-00",
                "waiting",
                &serde_json::json!({"missing": [], "update": update}),
            )
            .expect("append");
        let committed = Instant::now();
        appends.push((committed - started).as_secs_f64() * 1000.0);
        let mut seen = 0;
        let deadline = committed + Duration::from_secs(5);
        while seen < readers {
            match tokio::time::timeout_at(deadline.into(), received.recv()).await {
                Ok(Some((seq, at))) if seq == record.seq => {
                    latencies.push((at - committed).as_secs_f64() * 1000.0);
                    seen += 1;
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        assert_eq!(
            seen, readers,
            "update {update} reached {seen} of {readers} readers within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    latencies.sort_by(f64::total_cmp);
    appends.sort_by(f64::total_cmp);
    say!("readers {readers}");
    say!("updates {updates}");
    say!("append_ms_p50 {:.2}", percentile(&appends, 0.5));
    say!("update_ms_p50 {:.2}", percentile(&latencies, 0.5));
    say!("update_ms_p99 {:.2}", percentile(&latencies, 0.99));
    say!("update_ms_max {:.2}", percentile(&latencies, 1.0));
    for task in tasks {
        task.abort();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |index: usize| -> usize {
        args.get(index)
            .and_then(|text| text.parse().ok())
            .expect("a number")
    };
    match args.get(1).map(String::as_str) {
        Some("seed") => seed(&args[2], number(3), args.get(4).map_or(1, |_| number(4))),
        Some("load") => {
            load(
                &args[2],
                &args[3],
                &args[4],
                number(5),
                number(6),
                number(7),
            )
            .await
        }
        _ => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "usage: readers seed JOURNAL RECORDS [RUNS] | readers load URL JOURNAL RUN READERS UPDATES PAGES"
                );
            }
            std::process::exit(2);
        }
    }
}
