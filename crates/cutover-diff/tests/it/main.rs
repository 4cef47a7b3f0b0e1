//! Integration tests of cutover-diff against real PostgreSQL and real SQLite files.

mod cases;
mod properties;
mod resume;
mod support;
