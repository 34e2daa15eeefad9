//! End-to-end tests: build the fixtures with `cargo lprobe`, run them, arm probes through the
//! real socket and the real control file, and check the records they write.
//!
//! Each fixture is copied to `target/e2e/src/<name>` and built with its own target directory
//! `target/e2e/target/<name>`, so runs are incremental and never touch `fixtures/`.

mod harness;

mod bridges;
mod build;
mod control_file;
mod frames;
mod hostile;
mod lang;
mod metrics;
mod packaging;
mod panics;
mod prometheus;
mod recipes;
mod reliability;
mod skew;
mod skip;
mod socket;
mod trust;
mod ui;
