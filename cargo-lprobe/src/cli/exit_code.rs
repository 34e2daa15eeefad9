//! The exit codes of `lprobe` and `cargo lprobe`, and the error types that select them.
//!
//! A script that arms probes needs to tell "nothing to talk to" from "the program said no" from
//! "you typed it wrong" without parsing messages, so each has its own code. Everything that is
//! none of these (an I/O error, a malformed answer, a process that died mid-stream, a partial
//! failure with `--all`) is [`FAILURE`].

use crate::cli::client::ServerError;

/// The command did what was asked.
pub const SUCCESS: i32 = 0;
/// Anything else went wrong (see the message on stderr).
pub const FAILURE: i32 = 1;
/// The command line is wrong: an unknown flag, a bad value, flags that exclude each other, a
/// missing argument. (clap's own code for usage errors.)
pub const USAGE: i32 = 2;
/// No instrumented process to talk to: none is running, or none with `--pid`'s pid.
pub const NO_PROCESS: i32 = 3;
/// The process refused the request: no site at that location, a name the site does not
/// capture, a function built without sites, an unknown probe id… (its `{"ok":false}` answer).
pub const REFUSED: i32 = 4;
/// `cargo lprobe`: the build failed (cargo's own code for a failed build).
pub const BUILD_FAILED: i32 = 101;

/// The table printed by `lprobe --help` and copied in the README (a test keeps them equal).
pub const HELP: &str = "\
Exit codes:
  0    success
  1    failure (I/O, a malformed answer, a process that exited, some of --all failed)
  2    usage error (bad flags or values)
  3    no instrumented process (none running, or none with --pid's pid)
  4    the process refused the request (no site there, a name it does not capture…)
  101  cargo lprobe: the build failed";

/// A usage error found after parsing (flags that exclude each other, a missing argument).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// No instrumented process to talk to.
#[derive(Debug)]
pub struct NoProcess(pub String);

impl std::fmt::Display for NoProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoProcess {}

/// `anyhow!` for a [`Usage`] error.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(msg.into()))
}

/// `anyhow!` for a [`NoProcess`] error.
pub fn no_process(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(NoProcess(msg.into()))
}

/// The exit code for an error a command returned (context added on the way keeps its kind).
pub fn of(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<Usage>().is_some() {
        USAGE
    } else if e.downcast_ref::<NoProcess>().is_some() {
        NO_PROCESS
    } else if e.downcast_ref::<ServerError>().is_some() {
        REFUSED
    } else {
        FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn kinds_survive_added_context() {
        let e = Err::<(), _>(usage("--pid and --all")).context("arming");
        assert_eq!(of(&e.unwrap_err()), USAGE);
        let e = Err::<(), _>(no_process("none")).context("status");
        assert_eq!(of(&e.unwrap_err()), NO_PROCESS);
        let e = Err::<(), _>(anyhow::Error::new(ServerError("no site".into()))).context("x");
        assert_eq!(of(&e.unwrap_err()), REFUSED);
        assert_eq!(of(&anyhow::anyhow!("disk full")), FAILURE);
    }
}
