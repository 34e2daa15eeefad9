//! The colours both programs use, and how `--color`, `NO_COLOR` and the terminal decide
//! whether they are shown.
//!
//! Text is always written styled (anstyle's escape codes); the output streams are
//! [`anstream::AutoStream`]s that pass the codes to a terminal and strip them everywhere else,
//! or as `--color always|never` says. `auto` honours `NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`
//! and `TERM=dumb` (anstream's rules, the same as clap's and cargo's).

use anstyle::{AnsiColor, Effects, Style};

/// cargo's status verbs (`   Compiling`): bold green.
pub const STATUS: Style = AnsiColor::Green.on_default().effects(Effects::BOLD);
/// `error:`: bold red.
pub const ERROR: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
/// `warning:`: bold yellow.
pub const WARNING: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
/// Table headers.
pub const HEADER: Style = Style::new().effects(Effects::BOLD);
/// Secondary text (timestamps).
pub const DIM: Style = Style::new().effects(Effects::DIMMED);
/// Probe ids and locations.
pub const ACCENT: Style = AnsiColor::Cyan.on_default();

/// The width cargo right-aligns its status verbs to.
pub const STATUS_WIDTH: usize = 12;

/// `   Compiling foo`: `verb` right-aligned to cargo's width in bold green, then `msg`.
pub fn status_line(verb: &str, msg: &str) -> String {
    format!("{STATUS}{verb:>STATUS_WIDTH$}{STATUS:#} {msg}")
}

/// `error:` / `warning:` at the start of `line` styled as cargo does; other lines unchanged.
pub fn message_prefix(line: &str) -> String {
    for (prefix, style) in [("error:", ERROR), ("warning:", WARNING)] {
        if let Some(rest) = line.strip_prefix(prefix) {
            return format!("{style}{prefix}{style:#}{rest}");
        }
    }
    line.to_string()
}

/// The `--color` value in `args` (`--color WHEN` or `--color=WHEN`, before a `--`), if any.
pub fn color_arg<S: AsRef<str>>(args: &[S]) -> Option<String> {
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == "--color" {
            return it.next().map(str::to_owned);
        }
        if let Some(v) = a.strip_prefix("--color=") {
            return Some(v.to_owned());
        }
    }
    None
}

/// A `--color` value as anstream's choice; `None` for anything but `auto|always|never`.
pub fn parse_choice(when: &str) -> Option<anstream::ColorChoice> {
    match when {
        "auto" => Some(anstream::ColorChoice::Auto),
        "always" => Some(anstream::ColorChoice::Always),
        "never" => Some(anstream::ColorChoice::Never),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_verbs_are_right_aligned_like_cargo() {
        let l = status_line("Compiling", "foo v0.1.0");
        let plain = anstream::adapter::strip_str(&l).to_string();
        assert_eq!(plain, "   Compiling foo v0.1.0");
        assert!(
            l.starts_with("\u{1b}[1m\u{1b}[32m") || l.starts_with("\u{1b}[1;32m"),
            "{l:?}"
        );
    }

    #[test]
    fn message_prefixes_are_styled_and_the_rest_kept() {
        let l = message_prefix("error: no site at src/main.rs:9");
        assert_eq!(
            anstream::adapter::strip_str(&l).to_string(),
            "error: no site at src/main.rs:9"
        );
        assert_ne!(l, "error: no site at src/main.rs:9");
        assert_eq!(message_prefix("pid 4 exited"), "pid 4 exited");
    }

    #[test]
    fn color_arg_is_found_before_the_double_dash_only() {
        assert_eq!(
            color_arg(&["build", "--color", "never"]),
            Some("never".into())
        );
        assert_eq!(
            color_arg(&["build", "--color=always"]),
            Some("always".into())
        );
        assert_eq!(color_arg(&["run", "--", "--color=always"]), None);
        assert_eq!(parse_choice("sometimes"), None);
    }
}
