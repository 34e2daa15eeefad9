//! cargo-lprobe: builds instrumented copies of a workspace and talks to running programs.

pub mod client;
pub mod lprobe_cli;
pub mod rewrite;
pub mod visit;
