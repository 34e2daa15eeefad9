//! Shell-like word splitting and joining, and human durations such as `500ms` or `2m`.

use std::time::Duration;

/// Splits `line` into words like a POSIX shell (no expansion): `'…'` is literal, `"…"` honours
/// `\"`, `\\`, `\$` and `` \` `` (other backslashes are kept), and a bare `\x` is `x`.
pub fn split(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word is in progress (so `''` yields an empty word).
    let mut in_word = false;
    let mut chars = line.chars().enumerate().peekable();
    while let Some((col, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => word.push(c),
                        None => {
                            return Err(format!(
                            "unterminated single quote at column {} in '{line}': add a closing '",
                            col + 1
                        ))
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.peek() {
                            Some(&(_, e @ ('"' | '\\' | '$' | '`'))) => {
                                chars.next();
                                word.push(e);
                            }
                            _ => word.push('\\'),
                        },
                        Some((_, c)) => word.push(c),
                        None => {
                            return Err(format!(
                            "unterminated double quote at column {} in '{line}': add a closing \"",
                            col + 1
                        ))
                        }
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some((_, c)) => word.push(c),
                    None => {
                        return Err(format!(
                        "trailing backslash at column {} in '{line}': remove it or write '\\\\'",
                        col + 1
                    ))
                    }
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Joins words into one line that [`split`] turns back into the same words.
pub fn join(words: &[&str]) -> String {
    let mut out = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_quoted(&mut out, w);
    }
    out
}

/// Appends `w`, single-quoted if it holds anything but plainly safe characters.
pub fn push_quoted(out: &mut String, w: &str) {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,^".contains(c);
    if !w.is_empty() && w.chars().all(safe) {
        out.push_str(w);
        return;
    }
    out.push('\'');
    for c in w.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1d`, `1.5s`, `250us` (or `µs`, `ns`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("invalid duration '{s}': use a number with ms, s, m, h or d (e.g. 5s)");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at_checked(split).ok_or_else(bad)?;
    let unit_ns: u128 = match unit.trim_start() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(bad()),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(bad());
    }
    let too_long = || format!("duration '{s}' is too long: use a smaller number");
    // More than 30 integer digits cannot fit in u64 seconds anyway.
    if int.len() > 30 {
        return Err(too_long());
    }
    let whole: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad())?
    };
    // Fraction digits beyond nanosecond precision of the largest unit do not matter.
    let frac = frac.get(..frac.len().min(18)).unwrap_or("");
    let frac_ns = if frac.is_empty() {
        0
    } else {
        let f: u128 = frac.parse().map_err(|_| bad())?;
        f * unit_ns / 10u128.pow(frac.len() as u32) // ok: len <= 18, so 10^18 * 8.64e13 fits u128
    };
    let ns = whole
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(frac_ns))
        .ok_or_else(too_long)?;
    let secs = u64::try_from(ns / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (ns % 1_000_000_000) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            sp("  arm  src/main.rs:12 \t--log x "),
            ["arm", "src/main.rs:12", "--log", "x"]
        );
        assert_eq!(sp("'a b' \"c d\" e\\ f"), ["a b", "c d", "e f"]);
        assert_eq!(sp("'' \"\""), ["", ""]);
        assert_eq!(sp("a'b'\"c\"d"), ["abcd"]);
        assert_eq!(sp(r#""q\"x\\y\$z\`w\n""#), [r#"q"x\y$z`w\n"#]);
        assert_eq!(sp(r"'it'\''s'"), ["it's"]);
        assert_eq!(sp(r"'\n'"), [r"\n"]);
        assert_eq!(
            sp("--msg 'order {order.id}' --if 'x == \"a b\"'"),
            ["--msg", "order {order.id}", "--if", "x == \"a b\""]
        );
        assert!(sp("").is_empty());
        assert!(sp("   ").is_empty());
        assert_eq!(sp("é \"ü\""), ["é", "ü"]);
    }

    #[test]
    fn split_errors_name_the_column() {
        assert_eq!(
            split("a 'bc").unwrap_err(),
            "unterminated single quote at column 3 in 'a 'bc': add a closing '"
        );
        assert_eq!(
            split("ab \"c\\\"").unwrap_err(),
            "unterminated double quote at column 4 in 'ab \"c\\\"': add a closing \""
        );
        assert_eq!(
            split("a\\").unwrap_err(),
            "trailing backslash at column 2 in 'a\\': remove it or write '\\\\'"
        );
    }

    #[test]
    fn join_round_trips() {
        let cases: &[&[&str]] = &[
            &[],
            &[""],
            &["plain", "src/main.rs:12", "a=b", "-x"],
            &[
                "a b", "it's", "'", "''", "\"", "\\", "\\'", "$HOME", "`x`", "a\nb", "\t", " ",
            ],
            &[
                "x == \"a b\" && !y",
                "{a}",
                "#",
                "~",
                "*",
                "é ü",
                "😀",
                ";|&<>()",
            ],
        ];
        for words in cases {
            let line = join(words);
            assert_eq!(split(&line).unwrap(), *words, "line: {line}");
        }
        assert_eq!(join(&["a", "b c", "it's", ""]), r"a 'b c' 'it'\''s' ''");
    }

    #[test]
    fn join_round_trips_every_ascii_pair() {
        for a in 0u8..128 {
            for b in [b'a', b'\'', b'"', b'\\', b' '] {
                let w = String::from_utf8(vec![a, b]).unwrap();
                let line = join(&[&w, "z"]);
                assert_eq!(split(&line).unwrap(), [w.as_str(), "z"], "line: {line:?}");
            }
        }
    }

    #[test]
    fn durations() {
        let ms = Duration::from_millis;
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("5s"), Ok(ms(5000)));
        assert_eq!(parse_duration("5"), Ok(ms(5000)));
        assert_eq!(parse_duration("2m"), Ok(ms(120_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration(".5s"), Ok(ms(500)));
        assert_eq!(parse_duration("0.1m"), Ok(ms(6000)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(" 3 s "), Ok(ms(3000)));
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
    }

    #[test]
    fn duration_errors() {
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            "invalid duration '5x': use a number with ms, s, m, h or d (e.g. 5s)"
        );
        for bad in ["", "s", "-5s", "1.2.3s", ".", "5 s s", "1e3s", "ms5"] {
            assert!(
                parse_duration(bad)
                    .unwrap_err()
                    .starts_with("invalid duration"),
                "{bad}"
            );
        }
        assert!(parse_duration("99999999999999999999999999999999d")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("999999999999999d")
            .unwrap_err()
            .contains("too long"));
    }
}
