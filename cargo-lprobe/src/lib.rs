//! cargo-lprobe: builds instrumented copies of a workspace and talks to running programs.

pub mod cargo;
pub mod client;
pub mod copy_tree;
pub mod driver;
pub mod lprobe_cli;
pub mod manifest;
pub mod recall;
pub mod repair;
pub mod rewrite;
pub mod runtime_cache;
pub mod runtime_src;
pub mod sites_crate;
pub mod skip;
pub mod stamp;
pub mod visit;
pub mod workspace;
