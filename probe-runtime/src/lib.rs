//! The runtime linked into programs instrumented by `cargo lprobe`.

pub mod args;
pub mod expr;
pub mod json;
pub mod path;
pub mod template;
pub mod time;
pub mod value;
