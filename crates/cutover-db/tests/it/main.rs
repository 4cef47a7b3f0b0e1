//! Integration tests of cutover-db against real PostgreSQL and SQLite.

mod errors;
mod introspect;
mod streaming;
mod support;
mod tls;
mod types;
