//! What `cargo lprobe` prints while it works: cargo-style status lines on stderr
//! (`   Repairing …`, right-aligned bold green verbs), and on a terminal one progress line per
//! stage (rewriting, each build round) in place of cargo's "Compiling …" lines.
//!
//! Three modes, chosen once per run ([`init`]):
//! - **verbose** (`-v`): every line cargo prints goes through, as before, plus lprobe's details;
//! - **bar** (stderr is a terminal): a spinner line that shows the round and what cargo is
//!   compiling, replaced by one status line when a round needs repairs; cargo's errors are
//!   kept and printed as always;
//! - **plain** (anything else: CI logs, a pipe): cargo's lines for the first round only (the
//!   real compile), then one status line per repair round.
//!
//! Colours follow `--color` (as given to cargo) or `CARGO_TERM_COLOR`, then `NO_COLOR` and the
//! terminal (see [`crate::style`]); every line goes through anstream, which strips the codes
//! when colours are off.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::style;

/// How a run reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Verbose,
    Bar,
    Plain,
}

struct State {
    mode: Mode,
    /// The build round under way (1: the first build).
    round: usize,
    bar: Option<ProgressBar>,
}

static STATE: Mutex<State> = Mutex::new(State {
    mode: Mode::Plain,
    round: 0,
    bar: None,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the colour choice and the mode from `cargo lprobe`'s arguments. Called once, before
/// anything is printed.
pub fn init(args: &[String], verbose: bool) {
    let when = style::color_arg(args).or_else(|| std::env::var("CARGO_TERM_COLOR").ok());
    if let Some(choice) = when.as_deref().and_then(style::parse_choice) {
        choice.write_global();
    }
    let tty = std::io::stderr().is_terminal() && std::env::var("TERM").as_deref() != Ok("dumb");
    state().mode = choose_mode(verbose, tty);
}

/// The mode for a run: `-v` first, then whether stderr is a terminal.
pub fn choose_mode(verbose: bool, tty: bool) -> Mode {
    match (verbose, tty) {
        (true, _) => Mode::Verbose,
        (false, true) => Mode::Bar,
        (false, false) => Mode::Plain,
    }
}

/// This run's mode.
pub fn mode() -> Mode {
    state().mode
}

/// Whether colours are on for stderr (the compiler's diagnostics are then asked for with
/// their colours).
pub fn colors_on() -> bool {
    anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never
}

/// Writes a line on stderr above the progress line, if there is one.
fn eprint_line(line: &str) {
    let st = state();
    let write = || {
        let mut e = anstream::stderr().lock();
        let _ = writeln!(e, "{line}");
    };
    match &st.bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// A cargo-style status line: `verb` right-aligned in bold green, then `msg`.
pub fn status(verb: &str, msg: &str) {
    eprint_line(&style::status_line(verb, msg));
}

/// `warning: …` (or a line that already starts with `warning:`/`error:`), styled.
pub fn message(line: &str) {
    eprint_line(&style::message_prefix(line));
}

/// Text from the compiler (rendered diagnostics, with their own newlines), after the
/// progress line is gone; colours stripped when they are off.
pub fn eprint_raw(text: &str) {
    clear();
    let mut e = anstream::stderr().lock();
    let _ = e.write_all(text.as_bytes());
}

/// Removes the progress line (before errors, the summary, or handing over to cargo).
pub fn clear() {
    if let Some(bar) = state().bar.take() {
        bar.finish_and_clear();
    }
}

fn spinner(verb: &str, msg: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = format!(
        "{}{{prefix:>{}}}{} {{spinner}} {{wide_msg}}",
        style::STATUS.render(),
        style::STATUS_WIDTH,
        style::STATUS.render_reset()
    );
    let template = if colors_on() {
        template
    } else {
        anstream::adapter::strip_str(&template).to_string()
    };
    if let Ok(s) = ProgressStyle::with_template(&template) {
        bar.set_style(s.tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "));
    }
    bar.set_prefix(verb.to_owned());
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// A stage starts (`Rewriting`, …): on a terminal, a spinner until the next stage or line.
pub fn stage(verb: &str, msg: &str) {
    let mut st = state();
    if st.mode != Mode::Bar {
        return;
    }
    if let Some(old) = st.bar.take() {
        old.finish_and_clear();
    }
    st.bar = Some(spinner(verb, msg));
}

/// Build round `round` starts (1: the first build, then one per repair).
pub fn round_start(round: usize, check: bool) {
    let mode = {
        let mut st = state();
        st.round = round;
        st.mode
    };
    if mode == Mode::Bar {
        let what = if round == 1 {
            "the instrumented copy".to_string()
        } else {
            format!("the instrumented copy, round {round}")
        };
        stage(if check { "Checking" } else { "Building" }, &what);
    }
}

/// A round failed in rewritten code and the next will build without what caused it: one
/// status line (the verbose mode prints its own, longer one).
/// `next` says what the next round does (`rebuilding`, `checking`).
pub fn repairing(repair_round: usize, errors: usize, codes: &str, next: &str) {
    if mode() == Mode::Verbose {
        return;
    }
    status(
        "Repairing",
        &format!(
            "round {repair_round}: {errors} error{} in rewritten code ({codes}), {next}",
            if errors == 1 { "" } else { "s" }
        ),
    );
}

/// What to do with one of cargo's progress lines (`Compiling foo v0.1.0`, `Finished …`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Print it as it is.
    Print,
    /// Show it on the progress line.
    Bar,
    /// Leave it out.
    Drop,
}

/// Where cargo's progress line goes in `mode` during build round `round`.
pub fn route(mode: Mode, round: usize, line: &str) -> Route {
    let word = line.split_whitespace().next().unwrap_or("");
    // Waiting and the network: worth a line in every mode.
    let always = matches!(
        word,
        "Downloading" | "Downloaded" | "Updating" | "Blocking" | "Finished"
    );
    match mode {
        Mode::Verbose => Route::Print,
        _ if always => Route::Print,
        Mode::Bar => Route::Bar,
        Mode::Plain if round <= 1 => Route::Print,
        Mode::Plain => Route::Drop,
    }
}

/// One of cargo's progress lines, from the thread reading its stderr.
pub fn cargo_line(line: &str) {
    let (mode, round, bar) = {
        let st = state();
        (st.mode, st.round, st.bar.clone())
    };
    match route(mode, round, line) {
        Route::Print => eprint_line(line),
        Route::Bar => match bar {
            Some(bar) => bar.set_message(line.trim().to_owned()),
            None => eprint_line(line),
        },
        Route::Drop => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_wins_then_the_terminal_decides() {
        assert_eq!(choose_mode(true, true), Mode::Verbose);
        assert_eq!(choose_mode(true, false), Mode::Verbose);
        assert_eq!(choose_mode(false, true), Mode::Bar);
        assert_eq!(choose_mode(false, false), Mode::Plain);
    }

    #[test]
    fn repair_rounds_compile_quietly_off_a_terminal() {
        let c = "   Compiling foo v0.1.0 (/x)";
        assert_eq!(route(Mode::Plain, 1, c), Route::Print);
        assert_eq!(route(Mode::Plain, 2, c), Route::Drop);
        assert_eq!(
            route(Mode::Plain, 3, "    Finished `dev` profile"),
            Route::Print
        );
        assert_eq!(
            route(Mode::Plain, 2, "    Blocking waiting for file lock"),
            Route::Print
        );
    }

    #[test]
    fn a_terminal_shows_compiling_on_the_progress_line_and_verbose_shows_all() {
        let c = "   Compiling foo v0.1.0 (/x)";
        assert_eq!(route(Mode::Bar, 1, c), Route::Bar);
        assert_eq!(route(Mode::Bar, 2, " Downloading crates ..."), Route::Print);
        assert_eq!(route(Mode::Verbose, 2, c), Route::Print);
    }
}
