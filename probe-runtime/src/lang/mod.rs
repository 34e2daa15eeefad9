//! The probe language: what a person writes to arm a probe and what a record shows. Pure
//! parsing, evaluation and formatting over values already captured: no global state, no
//! thread, and no import from `hot` or `plane` (only the API types of the crate root).
//!
//! `args` (shell-like words, durations), `expr` (conditions), `template` (`--log` text), `path`
//! (`user.id`, `v[0]`, `.len()`), `value` (`{:?}` text → structured value, limits, redaction,
//! JSON), `regex` (the bounded matcher behind `LPROBE_REDACT`; fails closed), `location`
//! (`FILE:LINE` / `fn:` resolution against a site table), `json`, `time` (RFC 3339).

pub mod args;
pub mod expr;
pub mod json;
pub mod location;
pub mod path;
pub(crate) mod regex;
pub mod template;
pub mod time;
pub mod value;
