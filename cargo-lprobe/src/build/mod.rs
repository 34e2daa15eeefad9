//! The instrumented build, as a pipeline (`driver`): find the workspace (`workspace`, `cargo`),
//! copy it aside (`copy_tree`, `manifest`), find the sites of each file (`visit`, `skip`,
//! `recall`, `cfg`; data files parsed shallowly by `parse`), write the probes into the copy
//! (`rewrite`, `sites_crate`, with the `tracing`/`log` output bridges of `bridge`), build it
//! (a clean build's first round started beside the rewrite: `early`) and repair what did not
//! compile (`repair`), skip it all when nothing changed (`stamp`), and compile the runtime
//! once per machine (`runtime_src`, `runtime_cache`).

pub mod bridge;
pub mod cargo;
pub mod cfg;
pub mod cli_spec;
pub mod compiler_info;
pub mod copy_tree;
pub mod driver;
pub mod early;
pub mod manifest;
pub mod parse;
pub mod progress;
pub mod recall;
pub mod repair;
pub mod resolve;
pub mod rewrite;
pub mod runtime_cache;
pub mod runtime_src;
pub mod sites_crate;
pub mod skip;
pub mod stamp;
pub mod visit;
pub mod workspace;
