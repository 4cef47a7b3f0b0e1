//! What the CLI takes from the environment on the libraries' behalf.

use std::path::PathBuf;

use cutover_db::ConnectOptions;

/// Connection options from `PGPASSWORD`, `PGPASSFILE` (or `~/.pgpass`) and `PGUSER` (or the
/// login name), and the Spark Connect token from `CUTOVER_SPARK_TOKEN`.
pub fn connect_options() -> ConnectOptions {
    let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    ConnectOptions {
        password: variable("PGPASSWORD"),
        passfile: variable("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| variable("HOME").map(|home| PathBuf::from(home).join(".pgpass"))),
        default_user: variable("PGUSER").or_else(|| variable("USER")),
        read_only: false,
        create_sqlite: false,
        sqlite_unchecked_references: false,
        spark_token: variable("CUTOVER_SPARK_TOKEN"),
        spark_session: Some(session_id()),
    }
}

/// A random UUID (version 4) naming this process's Spark Connect session.
fn session_id() -> String {
    let mut bytes = [0u8; 16];
    // Without randomness, a fixed id still names one session per process.
    let _ = getrandom::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}
