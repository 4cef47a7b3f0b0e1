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
        spark_token: variable("CUTOVER_SPARK_TOKEN"),
    }
}
