//! A small regular-expression matcher for redaction patterns (`LPROBE_REDACT`).
//!
//! The runtime redacts captured variables and fields whose *names* match secret patterns; a user
//! adds one with `LPROBE_REDACT`, e.g. `ssn|card_?number|^pin$|(bank|iban)_.*`. Names are short
//! identifiers and patterns are short, so this is a plain backtracking matcher, kept std-only.
//!
//! **Syntax:** literals (matched ASCII-case-insensitively), `.` (any char but `\n`), greedy `*`
//! `+` `?` (a trailing `?` making them lazy is accepted: it cannot change whether a match
//! exists), `|`, groups `( … )`, `(?: … )` and named `(?P<n> … )` / `(?<n> … )`, the no-op flag
//! `(?i)` / `(?i: … )`, classes `[abc]` `[a-z0-9_]` `[^…]` (a leading `]` is literal), anchors
//! `^` `$` (whole-text, like `\A` `\z`), escapes of punctuation (`\.` `\\` `\|` `\(` …), `\n` `\t`
//! `\r`, and `\d` (ASCII digit), `\w` (alphanumeric or `_`), `\s` (whitespace) with their negations
//! `\D` `\W` `\S`. Anything else (counted repetition `{2,3}`, backreferences, lookaround, word
//! boundaries, other flags, class set operations) is a parse error naming it; groups nest at most
//! [`MAX_DEPTH`] deep.
//!
//! **Bounds:** matching never panics and is bounded in time and memory. The backtracker remembers
//! every (instruction, position) state it has already explored and failed from, so no state is
//! explored twice: a search costs at most `program length × (haystack length + 1)` steps, which
//! defuses patterns like `(a*)*b`. On top of that each [`Regex::is_match`] call has a budget of
//! [`STEP_BUDGET`] steps; if it runs out, `is_match` returns `true` — it *fails closed*, treating
//! the name as secret rather than risking a leak.

use std::collections::HashSet;

/// How deeply groups may nest.
const MAX_DEPTH: usize = 32;

/// Steps (executed instructions) one [`Regex::is_match`] call may take before it gives up and
/// reports a match.
const STEP_BUDGET: usize = 100_000;

/// Largest visited-state bitset allocated (in bits, i.e. 128 KiB); beyond it a hash set holding at
/// most [`STEP_BUDGET`] states is used instead.
const MAX_BITSET_BITS: usize = 1 << 20;

/// A parsed pattern, compiled to a small program for the backtracking matcher.
#[derive(Debug, Clone)]
pub struct Regex {
    prog: Vec<Inst>,
}

impl Regex {
    /// Parses `pattern`; errors quote the pattern and the column: `invalid LPROBE_REDACT pattern 'a(b': unclosed '(' at column 2`.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let mut p = Parser {
            pat: pattern,
            chars: pattern.chars().collect(),
            pos: 0,
        };
        let node = p.parse_alt(0)?;
        if p.peek().is_some() {
            // parse_alt stops only at the end or at a ')' with no open group.
            return Err(p.err("unmatched ')'", p.pos));
        }
        let mut prog = Vec::new();
        compile(node, &mut prog);
        prog.push(Inst::Match);
        Ok(Regex { prog })
    }

    /// Case-insensitive (ASCII) unanchored search, like `regex::Regex::is_match` with `(?i)`.
    ///
    /// Fails closed: if the search exceeds its step budget ([`STEP_BUDGET`]), returns `true`.
    pub fn is_match(&self, haystack: &str) -> bool {
        !matches!(self.search(haystack, STEP_BUDGET).0, Outcome::NoMatch)
    }

    /// Runs the search with `budget` steps; returns the outcome and the steps taken.
    fn search(&self, hay: &str, budget: usize) -> (Outcome, usize) {
        let n = hay.len();
        let mut visited = Visited::new(self.prog.len(), n + 1);
        let mut stack: Vec<(usize, usize)> = Vec::new();
        let mut steps = 0usize;
        // States are shared across start positions: with no captures, a state that failed from
        // one start fails from any other.
        let starts = hay.char_indices().map(|(i, _)| i).chain(std::iter::once(n));
        for start in starts {
            stack.push((0, start));
            while let Some((mut pc, mut pos)) = stack.pop() {
                loop {
                    if !visited.insert(pc, pos) {
                        break;
                    }
                    steps += 1;
                    if steps > budget {
                        return (Outcome::OutOfBudget, steps);
                    }
                    let Some(inst) = self.prog.get(pc) else {
                        break; // unreachable: every jump target is inside the program
                    };
                    match inst {
                        Inst::Match => return (Outcome::Match, steps),
                        Inst::Char(want) => match next_char(hay, pos) {
                            Some((c, next)) if c.to_ascii_lowercase() == *want => {
                                pc += 1;
                                pos = next;
                            }
                            _ => break,
                        },
                        Inst::Any => match next_char(hay, pos) {
                            Some((c, next)) if c != '\n' => {
                                pc += 1;
                                pos = next;
                            }
                            _ => break,
                        },
                        Inst::Class(class) => match next_char(hay, pos) {
                            Some((c, next)) if class.matches(c) => {
                                pc += 1;
                                pos = next;
                            }
                            _ => break,
                        },
                        Inst::Start if pos == 0 => pc += 1,
                        Inst::End if pos == n => pc += 1,
                        Inst::Start | Inst::End => break,
                        Inst::Jmp(to) => pc = *to,
                        Inst::Split(first, second) => {
                            stack.push((*second, pos));
                            pc = *first;
                        }
                    }
                }
            }
        }
        (Outcome::NoMatch, steps)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Match,
    NoMatch,
    OutOfBudget,
}

/// The char at byte offset `pos` of `hay` and the offset after it.
fn next_char(hay: &str, pos: usize) -> Option<(char, usize)> {
    let c = hay.get(pos..)?.chars().next()?;
    Some((c, pos + c.len_utf8()))
}

/// The (instruction, position) states already explored.
enum Visited {
    Bits { words: Vec<u64>, width: usize },
    Set(HashSet<(usize, usize)>),
}

impl Visited {
    fn new(prog_len: usize, width: usize) -> Visited {
        match prog_len.checked_mul(width) {
            Some(bits) if bits <= MAX_BITSET_BITS => Visited::Bits {
                words: vec![0; bits.div_ceil(64)],
                width,
            },
            _ => Visited::Set(HashSet::new()),
        }
    }

    /// Marks a state; returns whether it was new.
    fn insert(&mut self, pc: usize, pos: usize) -> bool {
        match self {
            Visited::Bits { words, width } => {
                let bit = pc.saturating_mul(*width).saturating_add(pos);
                let mask = 1u64 << (bit % 64);
                match words.get_mut(bit / 64) {
                    Some(w) if *w & mask != 0 => false,
                    Some(w) => {
                        *w |= mask;
                        true
                    }
                    // Unreachable (pc < prog_len, pos < width); "new" keeps the search sound and
                    // the step budget still bounds it.
                    None => true,
                }
            }
            Visited::Set(set) => set.insert((pc, pos)),
        }
    }
}

/// One instruction of the backtracking program.
#[derive(Debug, Clone)]
enum Inst {
    /// The next char, ASCII-lowercased, equals this (already lowercased) char.
    Char(char),
    /// Any char but `\n`.
    Any,
    Class(Class),
    /// At the start of the haystack.
    Start,
    /// At the end of the haystack.
    End,
    Jmp(usize),
    /// Try the first target, backtrack to the second.
    Split(usize, usize),
    Match,
}

/// A bracketed class, or a `\d`-style escape outside brackets.
#[derive(Debug, Clone)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
    perl: Vec<Perl>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let hit = |c: char| {
            self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
                || self.perl.iter().any(|p| p.matches(c))
        };
        let found = hit(c) || hit(c.to_ascii_lowercase()) || hit(c.to_ascii_uppercase());
        found != self.negated
    }
}

/// `\d` `\w` `\s`; `true` for the negated forms `\D` `\W` `\S`.
#[derive(Debug, Clone, Copy)]
enum Perl {
    Digit(bool),
    Word(bool),
    Space(bool),
}

impl Perl {
    fn matches(self, c: char) -> bool {
        match self {
            Perl::Digit(neg) => c.is_ascii_digit() != neg,
            Perl::Word(neg) => (c.is_alphanumeric() || c == '_') != neg,
            Perl::Space(neg) => c.is_whitespace() != neg,
        }
    }
}

/// The parsed pattern.
#[derive(Debug)]
enum Node {
    Empty,
    /// An ASCII-lowercased literal char.
    Lit(char),
    Any,
    Class(Class),
    Start,
    End,
    Concat(Vec<Node>),
    Alt(Vec<Node>),
    /// `min1`: at least once (`+`); `many`: unbounded (`*`, `+`). Neither is `?`.
    Repeat {
        node: Box<Node>,
        min1: bool,
        many: bool,
    },
}

/// What a backslash escape stands for.
enum Escape {
    Lit(char),
    Perl(Perl),
    Start,
    End,
}

struct Parser<'a> {
    pat: &'a str,
    chars: Vec<char>,
    /// Index into `chars`; columns in errors are `pos + 1`.
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, msg: &str, at: usize) -> String {
        format!(
            "invalid LPROBE_REDACT pattern '{}': {msg} at column {}",
            self.pat,
            at + 1
        )
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    /// Alternatives, up to the end or an unconsumed `)`.
    fn parse_alt(&mut self, depth: usize) -> Result<Node, String> {
        let mut branches = vec![self.parse_concat(depth)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.parse_concat(depth)?);
        }
        Ok(match branches.len() {
            1 => branches.pop().unwrap_or(Node::Empty), // ok: len is 1
            _ => Node::Alt(branches),
        })
    }

    /// A sequence of quantified atoms, up to the end, `|` or `)`.
    fn parse_concat(&mut self, depth: usize) -> Result<Node, String> {
        let mut items: Vec<Node> = Vec::new();
        while let Some(c) = self.peek() {
            let at = self.pos;
            match c {
                '|' | ')' => break,
                '*' | '+' | '?' => {
                    self.pos += 1;
                    let Some(last) = items.last_mut() else {
                        return Err(self.err(&format!("'{c}' has nothing to repeat"), at));
                    };
                    repeat(last, c);
                    if self.peek() == Some('?') {
                        // Lazy: the same set of matches, so the same answer for `is_match`.
                        self.pos += 1;
                    }
                }
                '{' => {
                    let text: String = self
                        .chars
                        .iter()
                        .skip(at)
                        .take(12)
                        .take_while(|&&c| c != '}')
                        .collect();
                    let text = match self.chars.get(at + text.chars().count()) {
                        Some('}') => format!("{text}}}"),
                        _ => text,
                    };
                    return Err(self.err(
                        &format!(
                            "counted repetition '{text}' is not supported (use '*', '+' or '?')"
                        ),
                        at,
                    ));
                }
                '(' => items.push(self.parse_group(depth)?),
                '[' => items.push(self.parse_class()?),
                '.' => {
                    self.pos += 1;
                    items.push(Node::Any);
                }
                '^' => {
                    self.pos += 1;
                    items.push(Node::Start);
                }
                '$' => {
                    self.pos += 1;
                    items.push(Node::End);
                }
                '\\' => items.push(match self.parse_escape()? {
                    Escape::Lit(c) => Node::Lit(c.to_ascii_lowercase()),
                    Escape::Perl(p) => Node::Class(Class {
                        negated: false,
                        ranges: Vec::new(),
                        perl: vec![p],
                    }),
                    Escape::Start => Node::Start,
                    Escape::End => Node::End,
                }),
                _ => {
                    self.pos += 1;
                    items.push(Node::Lit(c.to_ascii_lowercase()));
                }
            }
        }
        Ok(match items.len() {
            0 => Node::Empty,
            1 => items.pop().unwrap_or(Node::Empty), // ok: len is 1
            _ => Node::Concat(items),
        })
    }

    /// A group starting at the `(` under `pos`.
    fn parse_group(&mut self, depth: usize) -> Result<Node, String> {
        let at = self.pos;
        if depth >= MAX_DEPTH {
            return Err(self.err(&format!("groups nested more than {MAX_DEPTH} deep"), at));
        }
        self.pos += 1;
        if self.peek() == Some('?') {
            let unsupported = |p: &Self, what: &str, len: usize| {
                let text: String = p.chars.iter().skip(at).take(len).collect();
                Err(p.err(&format!("{what} '{text}' is not supported"), at))
            };
            match (self.peek_at(1), self.peek_at(2)) {
                (Some(':'), _) => self.pos += 2,
                (Some('='), _) => return unsupported(self, "lookahead", 3),
                (Some('!'), _) => return unsupported(self, "negative lookahead", 3),
                (Some('<'), Some('=')) => return unsupported(self, "lookbehind", 4),
                (Some('<'), Some('!')) => return unsupported(self, "negative lookbehind", 4),
                (Some('<'), _) | (Some('P'), Some('<')) => {
                    // A named group: the name is ignored.
                    self.pos += if self.peek_at(1) == Some('P') { 3 } else { 2 };
                    let name_at = self.pos;
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.pos += 1;
                    }
                    if self.pos == name_at || self.peek() != Some('>') {
                        return Err(self.err("invalid group name (expected '(?<name>…)')", at));
                    }
                    self.pos += 1;
                }
                (Some(c), _) if c.is_ascii_alphabetic() || c == '-' => {
                    // Flags: only `i`, which is always on.
                    let mut len = 1;
                    while self
                        .peek_at(len)
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '-')
                    {
                        len += 1;
                    }
                    let flags: String =
                        self.chars.iter().skip(self.pos + 1).take(len - 1).collect();
                    let end = self.peek_at(len);
                    if flags != "i" || !matches!(end, Some(':' | ')')) {
                        return unsupported(self, "flag group", len + 2);
                    }
                    self.pos += len + 1;
                    if end == Some(')') {
                        return Ok(Node::Empty);
                    }
                }
                _ => return unsupported(self, "group syntax", 3),
            }
        }
        let inner = self.parse_alt(depth + 1)?;
        if self.peek() != Some(')') {
            return Err(self.err("unclosed '('", at));
        }
        self.pos += 1;
        Ok(inner)
    }

    /// A bracketed class starting at the `[` under `pos`.
    fn parse_class(&mut self) -> Result<Node, String> {
        let at = self.pos;
        self.pos += 1;
        let negated = self.peek() == Some('^');
        if negated {
            self.pos += 1;
        }
        let mut class = Class {
            negated,
            ranges: Vec::new(),
            perl: Vec::new(),
        };
        let mut first = true;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unclosed '['", at));
            };
            if c == ']' && !first {
                self.pos += 1;
                break;
            }
            first = false;
            if matches!(c, '&' | '-' | '~') && self.peek_at(1) == Some(c) {
                return Err(self.err(
                    &format!("class set operation '{c}{c}' is not supported"),
                    self.pos,
                ));
            }
            let lo_at = self.pos;
            let lo = self.class_atom(at)?;
            let is_range =
                self.peek() == Some('-') && !matches!(self.peek_at(1), None | Some(']' | '-'));
            match (lo, is_range) {
                (Escape::Lit(lo), true) => {
                    self.pos += 1;
                    let hi = match self.class_atom(at)? {
                        Escape::Lit(hi) if lo <= hi => hi,
                        Escape::Lit(hi) => {
                            return Err(self.err(&format!("invalid class range '{lo}-{hi}'"), lo_at))
                        }
                        _ => return Err(self.err("a class range must end in a single char", lo_at)),
                    };
                    class.ranges.push((lo, hi));
                }
                (Escape::Lit(c), false) => class.ranges.push((c, c)),
                (Escape::Perl(p), false) => class.perl.push(p),
                (Escape::Perl(_), true) => {
                    return Err(self.err("a class range must start with a single char", lo_at))
                }
                (Escape::Start | Escape::End, _) => {
                    return Err(self.err("anchors are not allowed inside a class", lo_at))
                }
            }
        }
        Ok(Node::Class(class))
    }

    /// One char or escape inside a class opened at `class_at`.
    fn class_atom(&mut self, class_at: usize) -> Result<Escape, String> {
        match self.peek() {
            None => Err(self.err("unclosed '['", class_at)),
            Some('\\') => self.parse_escape(),
            Some('[') => Err(self.err(
                "'[' inside a class (nested or POSIX classes) is not supported; write '\\['",
                self.pos,
            )),
            Some(c) => {
                self.pos += 1;
                Ok(Escape::Lit(c))
            }
        }
    }

    /// A backslash escape starting at the `\` under `pos`.
    fn parse_escape(&mut self) -> Result<Escape, String> {
        let at = self.pos;
        self.pos += 1;
        let Some(c) = self.peek() else {
            return Err(self.err("trailing '\\' (write '\\\\' for a backslash)", at));
        };
        self.pos += 1;
        let unsupported =
            |p: &Self, what: &str| Err(p.err(&format!("{what} '\\{c}' is not supported"), at));
        Ok(match c {
            'd' => Escape::Perl(Perl::Digit(false)),
            'D' => Escape::Perl(Perl::Digit(true)),
            'w' => Escape::Perl(Perl::Word(false)),
            'W' => Escape::Perl(Perl::Word(true)),
            's' => Escape::Perl(Perl::Space(false)),
            'S' => Escape::Perl(Perl::Space(true)),
            'n' => Escape::Lit('\n'),
            't' => Escape::Lit('\t'),
            'r' => Escape::Lit('\r'),
            'a' => Escape::Lit('\x07'),
            'f' => Escape::Lit('\x0c'),
            'v' => Escape::Lit('\x0b'),
            'A' => Escape::Start,
            'z' => Escape::End,
            '0'..='9' => return unsupported(self, "backreference"),
            'b' | 'B' | '<' | '>' => return unsupported(self, "word boundary"),
            'p' | 'P' => return unsupported(self, "Unicode class"),
            'x' | 'u' | 'U' => return unsupported(self, "hex escape"),
            c if c.is_ascii_punctuation() || c == ' ' => Escape::Lit(c),
            _ => return unsupported(self, "escape"),
        })
    }
}

/// Applies quantifier `q` to `node`; stacked quantifiers merge (`a+*` → `a*`, `a?+` → `a*`), so
/// nodes never nest through repetition alone.
fn repeat(node: &mut Node, q: char) {
    let (min1, many) = match q {
        '*' => (false, true),
        '+' => (true, true),
        _ => (false, false),
    };
    *node = match std::mem::replace(node, Node::Empty) {
        Node::Repeat {
            node: inner,
            min1: m,
            many: y,
        } => Node::Repeat {
            node: inner,
            min1: m && min1,
            many: y || many,
        },
        other => Node::Repeat {
            node: Box::new(other),
            min1,
            many,
        },
    };
}

/// Points the `Jmp`, or the second target of the `Split`, at `at` to the end of `prog`.
fn patch(prog: &mut [Inst], at: usize) {
    let target = prog.len();
    if let Some(Inst::Jmp(t) | Inst::Split(_, t)) = prog.get_mut(at) {
        *t = target;
    }
}

/// Appends the program for `node`. Recursion depth is bounded by the group nesting limit.
fn compile(node: Node, prog: &mut Vec<Inst>) {
    match node {
        Node::Empty => {}
        Node::Lit(c) => prog.push(Inst::Char(c)),
        Node::Any => prog.push(Inst::Any),
        Node::Class(c) => prog.push(Inst::Class(c)),
        Node::Start => prog.push(Inst::Start),
        Node::End => prog.push(Inst::End),
        Node::Concat(items) => {
            for item in items {
                compile(item, prog);
            }
        }
        Node::Alt(branches) => {
            let last = branches.len().saturating_sub(1);
            let mut jumps = Vec::new();
            for (i, branch) in branches.into_iter().enumerate() {
                if i == last {
                    compile(branch, prog);
                } else {
                    let split = prog.len();
                    prog.push(Inst::Split(split + 1, 0));
                    compile(branch, prog);
                    jumps.push(prog.len());
                    prog.push(Inst::Jmp(0));
                    patch(prog, split);
                }
            }
            for j in jumps {
                patch(prog, j);
            }
        }
        Node::Repeat { node, min1, many } => match (min1, many) {
            // x*:  L: split(body, out); body; jmp L
            (false, true) => {
                let split = prog.len();
                prog.push(Inst::Split(split + 1, 0));
                compile(*node, prog);
                prog.push(Inst::Jmp(split));
                patch(prog, split);
            }
            // x+:  L: body; split(L, out)
            (true, true) => {
                let body = prog.len();
                compile(*node, prog);
                let out = prog.len() + 1;
                prog.push(Inst::Split(body, out));
            }
            // x?:  split(body, out); body
            (false, false) => {
                let split = prog.len();
                prog.push(Inst::Split(split + 1, 0));
                compile(*node, prog);
                patch(prog, split);
            }
            // Exactly once (not produced by the parser).
            (true, false) => compile(*node, prog),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn re(p: &str) -> Regex {
        match Regex::new(p) {
            Ok(r) => r,
            Err(e) => panic!("pattern {p:?} failed to parse: {e}"),
        }
    }

    fn check(p: &str, yes: &[&str], no: &[&str]) {
        let r = re(p);
        for h in yes {
            assert!(r.is_match(h), "{p:?} should match {h:?}");
        }
        for h in no {
            assert!(!r.is_match(h), "{p:?} should not match {h:?}");
        }
    }

    fn err(p: &str) -> String {
        match Regex::new(p) {
            Ok(_) => panic!("pattern {p:?} should not parse"),
            Err(e) => e,
        }
    }

    #[test]
    fn literals_search_unanchored() {
        check(
            "ssn",
            &["ssn", "user_ssn", "ssn_hash", "xssnx"],
            &["", "sn", "s_sn", "snn"],
        );
        check("", &["", "anything"], &[]);
    }

    #[test]
    fn case_insensitive() {
        check(
            "password",
            &["PASSWORD", "userPassword", "PaSsWoRd"],
            &["passwd"],
        );
        check(
            "API_KEY",
            &["api_key", "Api_Key", "my_api_key_2"],
            &["apikey"],
        );
        check("[A-C]x", &["ax", "BX", "cX"], &["dx"]);
        check("[^a]", &["b"], &["a", "A", "aA"]);
        // Only ASCII folds: 'Ä' and 'ä' are different chars.
        check("ä", &["ä", "xäx"], &["Ä"]);
    }

    #[test]
    fn dot() {
        check("a.c", &["abc", "a_c", "aäc", "xxa9cxx"], &["ac", "a\nc"]);
        check("^.$", &["x", "é"], &["", "xy"]);
    }

    #[test]
    fn star_plus_question() {
        check("ab*c", &["ac", "abc", "abbbbc"], &["adc", "ab"]);
        check("ab+c", &["abc", "abbbc"], &["ac"]);
        check("^ab?c$", &["ac", "abc"], &["abbc"]);
        check(
            "card_?number",
            &["card_number", "cardnumber", "CARDNUMBER"],
            &["card__number", "card-number"],
        );
        check("^(ab)+$", &["ab", "abab"], &["", "aba", "abb"]);
        check("^(ab)*$", &["", "ab", "ababab"], &["a"]);
    }

    #[test]
    fn stacked_and_lazy_quantifiers() {
        check("^a**$", &["", "aaa"], &["b"]);
        check("^a+?$", &["a", "aaa"], &[""]);
        check("^a*?b$", &["b", "aab"], &["ba"]);
        check("^a??b$", &["b", "ab"], &["aab"]);
        check("^(a?)+$", &["", "aaaa"], &["ab"]);
        // A very long run of stacked quantifiers neither nests nor overflows the stack.
        let p = format!("a{}", "*".repeat(100_000));
        check(&p, &["", "aaa"], &[]);
    }

    #[test]
    fn alternation() {
        check("ssn|pin", &["ssn", "pin_code"], &["ss", "pi"]);
        check(
            "^(bank|iban)_.*",
            &["bank_account", "IBAN_x", "iban_"],
            &["bankaccount", "my_bank_x", "iba_x"],
        );
        check("^x(a|bc|)y$", &["xay", "xbcy", "xy"], &["xby", "xaby"]);
        check("a|", &["", "zzz"], &[]);
        check(
            "^(?:tok|sec)(en|ret)$",
            &["token", "secret", "TOKret", "secen"],
            &["tokens", "se"],
        );
        check("((a|b)(c|d))+e", &["ace", "adbce"], &["abe", "e"]);
    }

    #[test]
    fn groups_and_flags() {
        check("(?i)ssn", &["SSN"], &["sn"]);
        check("(?i:a)b", &["AB"], &["a"]);
        check("^(?P<x>ab)(?<y>c)$", &["abc"], &["ab"]);
        check("^()$", &[""], &["a"]);
        check("(((((x)))))", &["x"], &["y"]);
    }

    #[test]
    fn classes() {
        check("^[abc]+$", &["a", "cab", "CAB"], &["", "abd"]);
        check(
            "^[a-z0-9_]+$",
            &["snake_case_9", "UPPER"],
            &["kebab-case", "a b"],
        );
        check("^[^0-9]+$", &["abc"], &["a1c", ""]);
        check("^[]a]+$", &["]", "a]a"], &["b"]);
        check("^[^]a]$", &["b"], &["]", "a"]);
        check("^[a-]$", &["a", "-"], &["b"]);
        check("^[-a]$", &["-", "a"], &["b"]);
        check("^[\\]\\\\\\-]+$", &["]", "\\", "-", "]\\-"], &["a"]);
        check("^[\\d_]+$", &["1_2"], &["a"]);
        check("^[\\w.]+$", &["a.b_c"], &["a-b"]);
        check("^[à-ÿ]$", &["é"], &["e"]);
        check("^[.*+?|()]+$", &["*.+?|()"], &["a"]);
    }

    #[test]
    fn anchors() {
        check("^pin$", &["pin", "PIN"], &["pin_code", "spin", "pinx", ""]);
        check("^pin", &["pin_code"], &["spin"]);
        check("pin$", &["spin"], &["pinx"]);
        check("\\Apin\\z", &["pin"], &["pins"]);
        check("^$", &[""], &["a"]);
        check("a^b", &[], &["ab", "a^b"]);
        check("^*a", &["a", "ba"], &["b"]);
    }

    #[test]
    fn escapes() {
        check("a\\.b", &["a.b"], &["axb"]);
        check("a\\\\b", &["a\\b"], &["ab"]);
        check("a\\|b", &["a|b"], &["a", "b"]);
        check("\\(x\\)", &["(x)"], &["x"]);
        check("\\*\\+\\?\\[\\]\\{\\}\\^\\$", &["*+?[]{}^$"], &["x"]);
        check("^\\d+$", &["123"], &["12a", ""]);
        check("^\\D+$", &["ab"], &["a1"]);
        check("^\\w+$", &["ab_9", "ünï"], &["a-b"]);
        check("^\\W$", &["-"], &["a", "_"]);
        check("a\\sb", &["a b", "a\tb"], &["ab"]);
        check("^\\S+$", &["ab"], &["a b"]);
        check("a\\nb", &["a\nb"], &["anb"]);
        check("}", &["}"], &["a"]);
    }

    #[test]
    fn brief_example_pattern() {
        check(
            "ssn|card_?number|^pin$|(bank|iban)_.*",
            &[
                "user_ssn",
                "CardNumber",
                "card_number",
                "pin",
                "bank_acct",
                "iban_code",
                "my_bank_x",
            ],
            &["pin_count", "cardnum", "banking", "spinner", "name"],
        );
    }

    #[test]
    fn pathological_patterns_are_bounded() {
        let long = "a".repeat(10_000);
        for p in [
            "(a*)*b",
            "(a|a)*b",
            "(a|aa)*b",
            "(a+)+b",
            "(.*)*x",
            "((a*)*)*b",
            "(a?)*(a?)*b",
        ] {
            let r = re(p);
            let t = Instant::now();
            let (outcome, steps) = r.search(&long, STEP_BUDGET);
            assert!(steps <= STEP_BUDGET + 1, "{p}: {steps} steps");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{p} took {:?}",
                t.elapsed()
            );
            if p.ends_with('b') {
                assert_ne!(outcome, Outcome::Match, "{p}");
            }
            // is_match agrees (false, or true by the budget) and also returns promptly.
            let _ = r.is_match(&long);
        }
        // On names of realistic length the memo keeps these well under budget: exact answers.
        let name = "a".repeat(200);
        check("(a*)*b", &["aaab", "b"], &[&name, "aaa"]);
        check("(a|aa)*c", &["aac"], &[&name]);
        check("^(a*)*$", &[&name, ""], &["ab"]);
    }

    #[test]
    fn out_of_budget_fails_closed() {
        let r = re("(a|b)*c");
        let hay = "ab".repeat(1000);
        assert_eq!(r.search(&hay, 10).0, Outcome::OutOfBudget);
        assert_eq!(r.search(&hay, STEP_BUDGET).0, Outcome::NoMatch);
        // A haystack long enough to exhaust the real budget is treated as secret.
        let huge = "x".repeat(STEP_BUDGET * 2);
        let t = Instant::now();
        assert!(re("ssn").is_match(&huge));
        assert!(t.elapsed() < Duration::from_secs(2));
        // ...but a match found before the budget runs out is still just a match.
        assert!(re("^x").is_match(&huge));
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            err("a(b"),
            "invalid LPROBE_REDACT pattern 'a(b': unclosed '(' at column 2"
        );
        assert_eq!(
            err("[a-"),
            "invalid LPROBE_REDACT pattern '[a-': unclosed '[' at column 1"
        );
        assert_eq!(
            err("*a"),
            "invalid LPROBE_REDACT pattern '*a': '*' has nothing to repeat at column 1"
        );
        assert_eq!(
            err("a{2}"),
            "invalid LPROBE_REDACT pattern 'a{2}': counted repetition '{2}' is not supported (use '*', '+' or '?') at column 2"
        );
        let cases = [
            ("a)", "unmatched ')' at column 2"),
            ("(a))", "unmatched ')' at column 4"),
            ("a{2,", "counted repetition '{2,' is not supported"),
            ("a|+b", "'+' has nothing to repeat at column 3"),
            ("(?b)", "flag group '(?b)' is not supported at column 1"),
            ("(?s:x)", "flag group '(?s:' is not supported"),
            ("(?-i)x", "flag group '(?-i)' is not supported"),
            ("(?)", "group syntax '(?)' is not supported"),
            ("(?", "group syntax '(?' is not supported"),
            ("(?=x)", "lookahead '(?=' is not supported at column 1"),
            (
                "x(?!y)",
                "negative lookahead '(?!' is not supported at column 2",
            ),
            ("(?<=x)", "lookbehind '(?<=' is not supported"),
            ("(?<!x)", "negative lookbehind '(?<!' is not supported"),
            ("(?<>x)", "invalid group name"),
            ("(?P<n", "invalid group name"),
            ("(a)\\1", "backreference '\\1' is not supported at column 4"),
            ("\\bpin", "word boundary '\\b' is not supported at column 1"),
            ("\\pL", "Unicode class '\\p' is not supported"),
            ("\\x41", "hex escape '\\x' is not supported"),
            ("\\q", "escape '\\q' is not supported"),
            (
                "ab\\",
                "trailing '\\' (write '\\\\' for a backslash) at column 3",
            ),
            ("[", "unclosed '[' at column 1"),
            ("[]", "unclosed '[' at column 1"),
            ("[^]", "unclosed '[' at column 1"),
            ("x[ab\\", "trailing '\\'"),
            ("[z-a]", "invalid class range 'z-a' at column 2"),
            (
                "[\\d-z]",
                "a class range must start with a single char at column 2",
            ),
            (
                "[a-\\d]",
                "a class range must end in a single char at column 2",
            ),
            ("[\\A]", "anchors are not allowed inside a class"),
            ("[[:alpha:]]", "'[' inside a class"),
            (
                "[a&&b]",
                "class set operation '&&' is not supported at column 3",
            ),
            ("[a--b]", "class set operation '--' is not supported"),
        ];
        for (p, want) in cases {
            let e = err(p);
            assert!(
                e.starts_with(&format!("invalid LPROBE_REDACT pattern '{p}': ")),
                "{e}"
            );
            assert!(e.contains(want), "{p:?}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn columns_count_chars_not_bytes() {
        assert!(err("éé(").ends_with("unclosed '(' at column 3"));
    }

    #[test]
    fn nesting_limit() {
        let ok = format!("{}x{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        check(&ok, &["x"], &["y"]);
        let ok2 = format!("{}x{}", "(?:".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        check(&ok2, &["x"], &["y"]);
        let deep = format!(
            "{}x{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        let e = err(&deep);
        assert!(
            e.ends_with(&format!(
                "groups nested more than {MAX_DEPTH} deep at column {}",
                MAX_DEPTH + 1
            )),
            "{e}"
        );
        // Siblings do not count towards depth.
        let wide = "(a)".repeat(1000);
        check(&wide, &[&"a".repeat(1000)], &["aa"]);
    }

    #[test]
    fn never_panics_on_arbitrary_patterns() {
        // Deterministic pseudo-random patterns over the metacharacters and a few literals.
        let alphabet: Vec<char> = "ab()[]{}^$.*+?|\\-:=!<>Pidws0é ".chars().collect();
        let hays = ["", "a", "ab", "ba", "aab(", "-]", "é", &"ab".repeat(100)];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut parsed = 0;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 12) as usize;
            let mut s = seed;
            let p: String = (0..len)
                .map(|_| {
                    s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    alphabet[((s >> 33) as usize) % alphabet.len()]
                })
                .collect();
            match Regex::new(&p) {
                Ok(r) => {
                    parsed += 1;
                    for h in hays {
                        let (_, steps) = r.search(h, STEP_BUDGET);
                        assert!(steps <= STEP_BUDGET + 1);
                    }
                }
                Err(e) => assert!(e.starts_with("invalid LPROBE_REDACT pattern '"), "{e}"),
            }
        }
        assert!(parsed > 1000, "only {parsed} patterns parsed");
    }
}
