//! cargo-lprobe: two programs over one library.
//!
//! - [`build`]: `cargo lprobe build|check|run|test|bench` — copies a workspace aside, rewrites
//!   its sources with probe sites, links the runtime and builds it (a pipeline of stages, see
//!   `build::driver`).
//! - [`cli`]: `lprobe` — the client of instrumented programs' control sockets (arm, list,
//!   tail, snapshot, status, hot…).
//!
//! The two share nothing at run time but [`style`] (colours, status lines): `cli` imports only
//! `build::skip` (the skip-file format `lprobe hot` writes), a number formatter and the
//! content hash the site table holds (`build::repair::content_hash`); `build`
//! imports nothing from `cli`.

pub mod build;
pub mod cli;
pub mod style;
