//! Side-effect-free conditions such as `order.total > 100 && !order.paid`, parsed once and evaluated per hit.

use crate::lang::path::{self, a, Path};
use crate::lang::value::Scalar;
use crate::lang::value::Value;
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// Parentheses and `!` may nest at most this deep.
const MAX_DEPTH: usize = 64;

/// A parsed condition.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    src: String,
    node: Node,
}

/// One node of a condition tree. `&&`/`||` chains are flat, so depth comes only from `(` and `!`.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A literal: `Null`, `Bool`, `Int`, `Float` or `Str`.
    Lit(Value),
    /// A value path.
    Path(Path),
    /// `!x`.
    Not(Box<Node>),
    /// `a && b && …` (at least two operands).
    And(Vec<Node>),
    /// `a || b || …` (at least two operands).
    Or(Vec<Node>),
    /// `a OP b`.
    Cmp(CmpOp, Box<Node>, Box<Node>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    #[inline]
    fn holds(self, o: Ordering) -> bool {
        match self {
            CmpOp::Eq => o == Ordering::Equal,
            CmpOp::Ne => o != Ordering::Equal,
            CmpOp::Lt => o == Ordering::Less,
            CmpOp::Le => o != Ordering::Greater,
            CmpOp::Gt => o == Ordering::Greater,
            CmpOp::Ge => o != Ordering::Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Path(Path),
    Lit(Value),
    Op(CmpOp),
    And,
    Or,
    Not,
    LParen,
    RParen,
    End,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Path(p) => format!("'{p}'"),
            Tok::Lit(v) => format!("{} literal", v.kind()),
            Tok::Op(o) => format!("'{}'", o.as_str()),
            Tok::And => "'&&'".into(),
            Tok::Or => "'||'".into(),
            Tok::Not => "'!'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::End => "end of condition".into(),
        }
    }
}

/// Parses a condition.
pub fn parse(s: &str) -> Result<Expr, String> {
    if s.trim().is_empty() {
        return Err("empty condition: write e.g. 'x > 3' or 'order.state == \"Ready\"'".into());
    }
    let toks = lex(s)?;
    let mut p = Parser {
        src: s,
        toks,
        pos: 0,
        depth: 0,
    };
    let node = p.or()?;
    if !matches!(p.peek(), Tok::End) {
        return Err(p.unexpected("an operator such as && or ||"));
    }
    Ok(Expr {
        src: s.to_string(),
        node,
    })
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = src.chars().collect();
    let err = |col: usize, what: String| format!("{what} at column {} in '{src}'", col + 1);
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let start = i;
        let next = chars.get(i + 1).copied();
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '=' | '!' | '<' | '>' if next == Some('=') => {
                i += 2;
                Tok::Op(match c {
                    '=' => CmpOp::Eq,
                    '!' => CmpOp::Ne,
                    '<' => CmpOp::Le,
                    _ => CmpOp::Ge,
                })
            }
            '!' => {
                i += 1;
                Tok::Not
            }
            '<' => {
                i += 1;
                Tok::Op(CmpOp::Lt)
            }
            '>' => {
                i += 1;
                Tok::Op(CmpOp::Gt)
            }
            '&' if next == Some('&') => {
                i += 2;
                Tok::And
            }
            '|' if next == Some('|') => {
                i += 2;
                Tok::Or
            }
            '=' => return Err(err(i, "unexpected '=' (use '==' to compare)".into())),
            '&' | '|' => {
                return Err(err(i, format!("unexpected '{c}' (use '{c}{c}')")));
            }
            '"' | '\'' => {
                let (s, end) = lex_string(&chars, i).map_err(|(col, m)| err(col, m))?;
                i = end;
                Tok::Lit(Value::Str(s))
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                i += 1;
                let digits = |i: &mut usize| {
                    let s = *i;
                    while chars.get(*i).is_some_and(|c| c.is_ascii_digit()) {
                        *i += 1;
                    }
                    *i - s
                };
                digits(&mut i);
                let mut float = false;
                if chars.get(i) == Some(&'.')
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())
                {
                    i += 1;
                    digits(&mut i);
                    float = true;
                }
                if matches!(chars.get(i), Some('e' | 'E')) {
                    let save = i;
                    i += 1;
                    if matches!(chars.get(i), Some('-' | '+')) {
                        i += 1;
                    }
                    if digits(&mut i) > 0 {
                        float = true;
                    } else {
                        i = save;
                    }
                }
                if chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    return Err(err(i, "unexpected letter after a number".into()));
                }
                let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
                let int = if float {
                    None
                } else {
                    text.parse::<i128>().ok()
                };
                match int {
                    Some(n) => Tok::Lit(Value::Int(n)),
                    None => match text.parse::<f64>() {
                        Ok(f) if f.is_finite() => Tok::Lit(Value::Float(f)),
                        _ => return Err(err(start, format!("number '{text}' is out of range"))),
                    },
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                i = path_end(&chars, i);
                let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
                match text.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "None" | "null" => Tok::Lit(Value::Null),
                    _ => Tok::Path(
                        path::parse(&text)
                            .map_err(|e| format!("{e} (at column {} in '{src}')", start + 1))?,
                    ),
                }
            }
            c => return Err(err(i, format!("unexpected '{c}'"))),
        };
        out.push((tok, start));
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

/// The end of a path starting at `i`: identifiers, `.field`, `.0`, `[n]` and `.len()`.
fn path_end(chars: &[char], mut i: usize) -> usize {
    let is_ident = |c: &char| c.is_alphanumeric() || *c == '_';
    while chars.get(i).is_some_and(is_ident) {
        i += 1;
    }
    loop {
        match chars.get(i) {
            Some('.') if chars.get(i + 1).is_some_and(is_ident) => {
                i += 1;
                let s = i;
                while chars.get(i).is_some_and(is_ident) {
                    i += 1;
                }
                let is_len = chars.get(s..i) == Some(&['l', 'e', 'n'][..]);
                if is_len && chars.get(i) == Some(&'(') && chars.get(i + 1) == Some(&')') {
                    i += 2;
                }
            }
            Some('[') => {
                // Take up to the matching ']' (path::parse validates the contents).
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|c| c.is_ascii_digit() || *c == ' ')
                {
                    j += 1;
                }
                if chars.get(j) != Some(&']') {
                    return j;
                }
                i = j + 1;
            }
            _ => return i,
        }
    }
}

/// A quoted string starting at `i`; returns the value and the index after the closing quote.
fn lex_string(chars: &[char], i: usize) -> Result<(String, usize), (usize, String)> {
    let quote = chars.get(i).copied().unwrap_or('"');
    let mut out = String::new();
    let mut j = i + 1;
    loop {
        let Some(&c) = chars.get(j) else {
            return Err((i, format!("unterminated string (add a closing {quote})")));
        };
        j += 1;
        if c == quote {
            return Ok((out, j));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let esc_col = j - 1;
        let bad = || {
            (
                esc_col,
                "invalid escape (use \\n, \\t, \\r, \\0, \\\\, \\\", \\' or \\u{…})".to_string(),
            )
        };
        let e = chars.get(j).copied().ok_or_else(bad)?;
        j += 1;
        out.push(match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'u' if chars.get(j) == Some(&'{') => {
                let start = j + 1;
                let mut k = start;
                while chars.get(k).is_some_and(|c| c.is_ascii_hexdigit()) && k - start < 6 {
                    k += 1;
                }
                if k == start || chars.get(k) != Some(&'}') {
                    return Err(bad());
                }
                let hex: String = chars.get(start..k).unwrap_or_default().iter().collect();
                j = k + 1;
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(bad)?
            }
            _ => return Err(bad()),
        });
    }
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(t, _)| t)
    }

    fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(0, |(_, c)| *c) + 1
    }

    fn advance(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn unexpected(&self, expected: &str) -> String {
        format!(
            "unexpected {} at column {} in '{}': expected {expected}",
            self.peek().describe(),
            self.col(),
            self.src
        )
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "condition nested too deeply at column {} in '{}' (at most {MAX_DEPTH} levels of '(' and '!')",
                self.col(),
                self.src
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, String> {
        let mut terms = vec![self.and()?];
        while matches!(self.peek(), Tok::Or) {
            self.advance();
            terms.push(self.and()?);
        }
        Ok(match terms.len() {
            1 => terms.pop().unwrap_or(Node::Lit(Value::Bool(false))), // ok: len is 1
            _ => Node::Or(terms),
        })
    }

    fn and(&mut self) -> Result<Node, String> {
        let mut terms = vec![self.cmp()?];
        while matches!(self.peek(), Tok::And) {
            self.advance();
            terms.push(self.cmp()?);
        }
        Ok(match terms.len() {
            1 => terms.pop().unwrap_or(Node::Lit(Value::Bool(false))), // ok: len is 1
            _ => Node::And(terms),
        })
    }

    fn cmp(&mut self) -> Result<Node, String> {
        let left = self.unary()?;
        let Tok::Op(op) = *self.peek() else {
            return Ok(left);
        };
        self.advance();
        let right = self.unary()?;
        if let Tok::Op(_) = self.peek() {
            return Err(format!(
                "chained comparison at column {} in '{}': combine comparisons with && (e.g. a < b && b < c)",
                self.col(),
                self.src
            ));
        }
        Ok(Node::Cmp(op, Box::new(left), Box::new(right)))
    }

    fn unary(&mut self) -> Result<Node, String> {
        match self.peek() {
            Tok::Not => {
                self.enter()?;
                self.advance();
                let inner = self.unary()?;
                self.depth -= 1; // ok: enter() incremented it
                Ok(Node::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.enter()?;
                self.advance();
                let inner = self.or()?;
                if !matches!(self.peek(), Tok::RParen) {
                    return Err(self.unexpected("')'"));
                }
                self.advance();
                self.depth -= 1; // ok: enter() incremented it
                Ok(inner)
            }
            Tok::Path(_) | Tok::Lit(_) => match self.advance() {
                Tok::Path(p) => Ok(Node::Path(p)),
                Tok::Lit(v) => Ok(Node::Lit(v)),
                _ => Err(self.unexpected("a value")), // unreachable: peeked above
            },
            _ => Err(self.unexpected("a value, a path, '!' or '('")),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, terms: &[Node], op: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, t) in terms.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{t}")?;
            }
            f.write_str(")")
        };
        match self {
            Node::Lit(Value::Str(s)) => write!(f, "{s:?}"),
            Node::Lit(Value::Null) => f.write_str("None"),
            Node::Lit(Value::Bool(b)) => write!(f, "{b}"),
            Node::Lit(Value::Int(i)) => write!(f, "{i}"),
            Node::Lit(Value::Float(x)) => write!(f, "{x:?}"),
            Node::Lit(v) => write!(f, "{v:?}"),
            Node::Path(p) => write!(f, "{p}"),
            Node::Not(n) => write!(f, "!{n}"),
            Node::And(t) => join(f, t, "&&"),
            Node::Or(t) => join(f, t, "||"),
            Node::Cmp(op, l, r) => write!(f, "{l} {} {r}", op.as_str()),
        }
    }
}

/// Root lookups done so far in one evaluation (each root is looked up at most once).
struct Env<'e, 'l> {
    lookup: &'l dyn Fn(&str) -> Option<Value>,
    cache: Vec<(&'e str, Option<Value>)>,
}

impl<'e> Env<'e, '_> {
    fn load(&mut self, root: &'e str) {
        if !self.cache.iter().any(|(r, _)| *r == root) {
            let v = (self.lookup)(root);
            self.cache.push((root, v));
        }
    }

    #[inline]
    fn get<'a>(&'a self, path: &Path) -> Result<Cow<'a, Value>, String> {
        let root = self
            .cache
            .iter()
            .find(|(r, _)| *r == path.root)
            .and_then(|(_, v)| v.as_ref())
            .ok_or_else(|| format!("no variable '{}' here", path.root))?;
        path.eval(root)
    }
}

/// A comparison operand before root values are borrowed.
enum Side<'e> {
    Path(&'e Path),
    Val(Cow<'e, Value>),
}

impl Expr {
    /// The source text this was parsed from.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// The parsed tree.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Distinct root variable names used, in order of first use.
    pub fn roots(&self) -> Vec<&str> {
        let mut out = Vec::new();
        collect_roots(&self.node, &mut out);
        out
    }

    /// Decides the condition without allocating, when every operand is a literal, a whole
    /// captured primitive (`load` reads it in place), or a comparison of those, combined with
    /// `&&`, `||` and `!`: `x > 5`, `name == "a" && !done`. `None` when it takes the general
    /// evaluator ([`Expr::eval`]: fields, other values, errors), which then decides alike.
    #[inline]
    pub(crate) fn quick<'a>(&self, load: &dyn Fn(&str) -> Option<Scalar<'a>>) -> Option<bool> {
        quick(&self.node, load)
    }

    /// Evaluates the condition; each root is looked up at most once.
    #[inline]
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Option<Value>) -> Result<bool, String> {
        let mut env = Env {
            lookup,
            cache: Vec::new(),
        };
        truth(&self.node, &mut env)
    }
}

fn collect_roots<'e>(n: &'e Node, out: &mut Vec<&'e str>) {
    match n {
        Node::Lit(_) => {}
        Node::Path(p) => {
            if !out.contains(&p.root.as_str()) {
                out.push(&p.root);
            }
        }
        Node::Not(n) => collect_roots(n, out),
        Node::And(t) | Node::Or(t) => t.iter().for_each(|n| collect_roots(n, out)),
        Node::Cmp(_, l, r) => {
            collect_roots(l, out);
            collect_roots(r, out);
        }
    }
}

#[inline]
fn truth<'e>(n: &'e Node, env: &mut Env<'e, '_>) -> Result<bool, String> {
    match n {
        Node::Lit(Value::Bool(b)) => Ok(*b),
        Node::Lit(v) => Err(format!(
            "{n} is {}, not a condition: compare it with something, e.g. x == {n}",
            a(v.kind())
        )),
        Node::Path(p) => {
            env.load(&p.root);
            match &*env.get(p)? {
                Value::Bool(b) => Ok(*b),
                v => Err(format!(
                    "{p} is {}, not a bool: compare it, e.g. {}",
                    a(v.kind()),
                    suggestion(p, v)
                )),
            }
        }
        Node::Not(n) => Ok(!truth(n, env)?),
        Node::And(t) => {
            for n in t {
                if !truth(n, env)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Node::Or(t) => {
            for n in t {
                if truth(n, env)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Node::Cmp(op, l, r) => {
            let ls = side(l, env)?;
            let rs = side(r, env)?;
            let lv = resolve(&ls, env)?;
            let rv = resolve(&rs, env)?;
            compare(*op, &lv, &rv).map_err(|(lk, rk)| {
                format!("cannot compare {lk} with {rk} in '{n}': compare values of the same kind")
            })
        }
    }
}

/// One operand of a quick comparison, read in place.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Str(&'a str),
    Int(i128),
    Float(f64),
    Bool(bool),
    Null,
}

#[inline]
fn quick<'a>(n: &Node, load: &dyn Fn(&str) -> Option<Scalar<'a>>) -> Option<bool> {
    match n {
        Node::Lit(Value::Bool(b)) => Some(*b),
        Node::Path(p) if p.steps.is_empty() => match load(&p.root)? {
            Scalar::Bool(b) => Some(b),
            _ => None,
        },
        Node::Not(n) => quick(n, load).map(|b| !b),
        // Left to right with short circuits, like `truth`: an operand the quick path cannot
        // decide hands the whole condition to the general evaluator.
        Node::And(t) => {
            for n in t {
                if !quick(n, load)? {
                    return Some(false);
                }
            }
            Some(true)
        }
        Node::Or(t) => {
            for n in t {
                if quick(n, load)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Node::Cmp(op, l, r) => quick_compare(*op, operand(l, load)?, operand(r, load)?),
        _ => None,
    }
}

/// `compare` on operands of the same kind; other pairs are left to it (`None`).
#[inline]
fn quick_compare(op: CmpOp, l: Operand<'_>, r: Operand<'_>) -> Option<bool> {
    use Operand::*;
    let float = |o: Operand<'_>| match o {
        Int(i) => i as f64,
        Float(f) => f,
        _ => f64::NAN,
    };
    let ord = match (l, r) {
        (Int(x), Int(y)) => x.cmp(&y),
        (Int(_) | Float(_), Int(_) | Float(_)) => match float(l).partial_cmp(&float(r)) {
            Some(o) => o,
            // NaN: equal to nothing, ordered against nothing.
            None => return Some(op == CmpOp::Ne),
        },
        (Bool(x), Bool(y)) => x.cmp(&y),
        (Str(x), Str(y)) => x.cmp(y),
        (Null, Null) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Ordering::Equal,
        _ => return None,
    };
    Some(op.holds(ord))
}

#[inline]
fn operand<'o, 'n: 'o, 'a: 'o>(
    n: &'n Node,
    load: &dyn Fn(&str) -> Option<Scalar<'a>>,
) -> Option<Operand<'o>> {
    Some(match n {
        Node::Lit(Value::Str(s)) => Operand::Str(s),
        Node::Lit(Value::Int(i)) => Operand::Int(*i),
        Node::Lit(Value::Float(f)) => Operand::Float(*f),
        Node::Lit(Value::Bool(b)) => Operand::Bool(*b),
        Node::Lit(Value::Null) => Operand::Null,
        Node::Lit(_) => return None,
        Node::Path(p) if p.steps.is_empty() => match load(&p.root)? {
            Scalar::Str(s) => Operand::Str(s),
            Scalar::Int(i) => Operand::Int(i),
            Scalar::Float(f) => Operand::Float(f),
            Scalar::Bool(b) => Operand::Bool(b),
            // Chars compare as text in `compare`; leave them to it.
            Scalar::Char(_) => return None,
        },
        // `s.len()` of a string: its length in bytes, without reading (or copying) the text.
        Node::Path(p) if p.steps == [crate::lang::path::Step::Len] => match load(&p.root)? {
            Scalar::Str(s) => Operand::Int(i128::try_from(s.len()).ok()?),
            _ => return None,
        },
        Node::Path(_) => return None,
        other => Operand::Bool(quick(other, load)?),
    })
}

fn suggestion(p: &Path, v: &Value) -> String {
    match v {
        Value::Null => format!("{p} != None"),
        Value::Int(_) | Value::Float(_) => format!("{p} != 0"),
        Value::Str(_) | Value::Seq(_) | Value::Map(_) => format!("{p}.len() > 0"),
        _ => format!("{p} == \"…\""),
    }
}

#[inline]
fn side<'e>(n: &'e Node, env: &mut Env<'e, '_>) -> Result<Side<'e>, String> {
    Ok(match n {
        Node::Lit(v) => Side::Val(Cow::Borrowed(v)),
        Node::Path(p) => {
            env.load(&p.root);
            Side::Path(p)
        }
        other => Side::Val(Cow::Owned(Value::Bool(truth(other, env)?))),
    })
}

fn resolve<'a>(s: &'a Side<'_>, env: &'a Env<'_, '_>) -> Result<Cow<'a, Value>, String> {
    match s {
        Side::Path(p) => env.get(p),
        Side::Val(v) => Ok(Cow::Borrowed(&**v)),
    }
}

/// String-like values compare as strings (so `state == "Ready"` matches a unit variant).
fn as_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Str(s) | Value::Unit(s) | Value::Text(s) => Some(Cow::Borrowed(s)),
        Value::Char(c) => Some(Cow::Owned(c.to_string())),
        _ => None,
    }
}

/// Compares two values; `Err((kind, kind))` when `op` is an ordering the kinds do not support.
#[inline]
fn compare(op: CmpOp, l: &Value, r: &Value) -> Result<bool, (&'static str, &'static str)> {
    let ord: Option<Ordering> = match (l, r) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let f = |v: &Value| match v {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                _ => f64::NAN,
            };
            match f(l).partial_cmp(&f(r)) {
                Some(o) => Some(o),
                // NaN: equal to nothing, ordered against nothing.
                None => return Ok(op == CmpOp::Ne),
            }
        }
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Null, Value::Null) if matches!(op, CmpOp::Eq | CmpOp::Ne) => Some(Ordering::Equal),
        _ => match (as_text(l), as_text(r)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        },
    };
    match (ord, op) {
        (Some(o), _) => Ok(op.holds(o)),
        (None, CmpOp::Eq) => Ok(l == r),
        (None, CmpOp::Ne) => Ok(l != r),
        (None, _) => Err((kind_word(l), kind_word(r))),
    }
}

fn kind_word(v: &Value) -> &'static str {
    match v {
        Value::Str(_) | Value::Unit(_) | Value::Text(_) | Value::Char(_) => "string",
        v => v.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::value::parse_debug;

    const VARS: &[(&str, &str)] = &[
        (
            "order",
            r#"Order { id: 7, total: 150.5, paid: false, state: Ready, who: "Ann", items: [1, 2, 3], note: None, c: 'x' }"#,
        ),
        ("n", "-3"),
        ("flag", "true"),
        ("nan", "NaN"),
    ];

    fn lookup(name: &str) -> Option<Value> {
        VARS.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, d)| parse_debug(d))
    }

    fn ev(s: &str) -> Result<bool, String> {
        parse(s)?.eval(&lookup)
    }

    #[test]
    fn the_length_of_a_string_is_decided_without_reading_it() {
        let big = "x".repeat(20 << 20);
        let load = |name: &str| (name == "body").then_some(Scalar::Str(big.as_str()));
        let e = parse("body.len() > 0").expect("parses");
        assert_eq!(e.quick(&load), Some(true));
        let e = parse("body.len() == 20971520 && body.len() < 1").expect("parses");
        assert_eq!(e.quick(&load), Some(false));
        let short = |name: &str| (name == "s").then_some(Scalar::Str("héy"));
        // Bytes, as in Rust.
        assert_eq!(
            parse("s.len() == 4").expect("parses").quick(&short),
            Some(true)
        );
    }

    #[test]
    fn comparisons() {
        assert_eq!(ev("order.id == 7"), Ok(true));
        assert_eq!(ev("order.id != 7"), Ok(false));
        assert_eq!(ev("order.total > 100"), Ok(true));
        assert_eq!(ev("order.total <= 150.5"), Ok(true));
        assert_eq!(ev("7 >= order.id"), Ok(true));
        assert_eq!(ev("n < -2"), Ok(true));
        assert_eq!(ev("n == -3.0"), Ok(true));
        assert_eq!(ev("order.total < 1e3"), Ok(true));
        assert_eq!(ev("order.state == \"Ready\""), Ok(true));
        assert_eq!(ev("order.state == 'Ready'"), Ok(true));
        assert_eq!(ev("order.who < \"Bob\""), Ok(true));
        assert_eq!(ev("order.c == \"x\""), Ok(true));
        assert_eq!(ev("order.note == None"), Ok(true));
        assert_eq!(ev("order.note != null"), Ok(false));
        assert_eq!(ev("order.paid == false"), Ok(true));
        assert_eq!(ev("order.items.len() == 3"), Ok(true));
        assert_eq!(ev("order.items[2] == 3"), Ok(true));
        // Different kinds are simply unequal.
        assert_eq!(ev("order.who == 3"), Ok(false));
        assert_eq!(ev("order.who != 3"), Ok(true));
        assert_eq!(ev("order.note == 0"), Ok(false));
        // NaN is equal to nothing.
        assert_eq!(ev("nan == nan"), Ok(false));
        assert_eq!(ev("nan != 1"), Ok(true));
        assert_eq!(ev("nan < 1"), Ok(false));
        assert_eq!(ev("\"a\\\"b\" == 'a\"b'"), Ok(true));
        assert_eq!(ev("\"\\u{e9}\" == \"é\""), Ok(true));
    }

    #[test]
    fn logic_and_precedence() {
        assert_eq!(ev("flag"), Ok(true));
        assert_eq!(ev("!flag"), Ok(false));
        assert_eq!(ev("!!flag"), Ok(true));
        assert_eq!(ev("order.total > 100 && !order.paid"), Ok(true));
        assert_eq!(ev("false || true && false"), Ok(false));
        assert_eq!(ev("(false || true) && true"), Ok(true));
        assert_eq!(ev("true || missing.x == 1"), Ok(true)); // short-circuit
        assert_eq!(ev("false && missing"), Ok(false));
        assert_eq!(ev("(order.id == 7) == true"), Ok(true));
        assert_eq!(ev("!order.paid == true"), Ok(true));
        assert_eq!(
            parse("a && b && c || d").unwrap().node().to_string(),
            "((a && b && c) || d)"
        );
    }

    #[test]
    fn eval_errors() {
        assert_eq!(
            ev("order.who < 3").unwrap_err(),
            "cannot compare string with integer in 'order.who < 3': compare values of the same kind"
        );
        assert_eq!(
            ev("order.note < 3").unwrap_err(),
            "cannot compare None with integer in 'order.note < 3': compare values of the same kind"
        );
        assert_eq!(
            ev("order.id").unwrap_err(),
            "order.id is an integer, not a bool: compare it, e.g. order.id != 0"
        );
        assert_eq!(
            ev("missing == 1").unwrap_err(),
            "no variable 'missing' here"
        );
        assert!(ev("order.nope == 1")
            .unwrap_err()
            .starts_with("no field 'nope' in order"));
        assert!(ev("3").unwrap_err().contains("not a condition"));
    }

    #[test]
    fn parse_errors_point_at_column() {
        assert_eq!(
            parse("a == )").unwrap_err(),
            "unexpected ')' at column 6 in 'a == )': expected a value, a path, '!' or '('"
        );
        assert_eq!(
            parse("(a == 1").unwrap_err(),
            "unexpected end of condition at column 8 in '(a == 1': expected ')'"
        );
        assert_eq!(
            parse("a = 1").unwrap_err(),
            "unexpected '=' (use '==' to compare) at column 3 in 'a = 1'"
        );
        assert_eq!(
            parse("a & b").unwrap_err(),
            "unexpected '&' (use '&&') at column 3 in 'a & b'"
        );
        assert_eq!(
            parse("x == \"abc").unwrap_err(),
            "unterminated string (add a closing \") at column 6 in 'x == \"abc'"
        );
        assert!(parse("a < b < c")
            .unwrap_err()
            .starts_with("chained comparison at column 7"));
        assert!(parse("a b")
            .unwrap_err()
            .starts_with("unexpected 'b' at column 3"));
        assert!(parse("12ab == 1")
            .unwrap_err()
            .contains("letter after a number"));
        assert!(parse("x == \"\\q\"")
            .unwrap_err()
            .contains("invalid escape"));
        assert!(parse("a..b == 1").is_err());
        assert!(parse("a[x] == 1").is_err());
        assert!(parse("   ").unwrap_err().starts_with("empty condition"));
        assert!(parse("#")
            .unwrap_err()
            .starts_with("unexpected '#' at column 1"));
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let deep = format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
        let nots = format!("{}true", "!".repeat(100_000));
        assert!(parse(&nots).unwrap_err().contains("nested too deeply"));
        let ok = format!("{}true{}", "(".repeat(60), ")".repeat(60));
        assert_eq!(parse(&ok).unwrap().eval(&lookup), Ok(true));
        // Long flat chains do not nest.
        let chain = vec!["flag"; 100_000].join(" && ");
        assert_eq!(parse(&chain).unwrap().eval(&lookup), Ok(true));
    }

    #[test]
    fn roots_and_single_lookup() {
        let e = parse("b.x == 1 || a && b.len() > 2 || !c").unwrap();
        assert_eq!(e.roots(), vec!["b", "a", "c"]);
        let calls = std::cell::Cell::new(0);
        let count = |name: &str| {
            calls.set(calls.get() + 1);
            lookup(name)
        };
        let e = parse("order.id == 7 && order.total > 1 && order.who == order.who").unwrap();
        assert_eq!(e.eval(&count), Ok(true));
        assert_eq!(calls.get(), 1);
        assert_eq!(
            e.source(),
            "order.id == 7 && order.total > 1 && order.who == order.who"
        );
    }

    #[test]
    fn the_quick_path_decides_like_the_general_evaluator_or_defers() {
        let vars: &[(&str, Scalar<'static>)] = &[
            ("n", Scalar::Int(7)),
            ("big", Scalar::Int(1 << 40)),
            ("f", Scalar::Float(2.5)),
            ("nan", Scalar::Float(f64::NAN)),
            ("ok", Scalar::Bool(true)),
            ("s", Scalar::Str("Ready")),
            ("c", Scalar::Char('x')),
        ];
        let load = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let lookup = |name: &str| {
            load(name).map(|v| match v {
                Scalar::Int(i) => Value::Int(i),
                Scalar::Float(f) => Value::Float(f),
                Scalar::Bool(b) => Value::Bool(b),
                Scalar::Char(c) => Value::Char(c),
                Scalar::Str(s) => Value::Str(s.to_owned()),
            })
        };
        let decided = [
            ("n > 5", true),
            ("n == 7 && f < 3", true),
            ("n >= 8 || s == \"Ready\"", true),
            ("!ok", false),
            ("ok && n != 7", false),
            ("big > n", true),
            ("f == 2.5", true),
            ("nan == nan", false),
            ("nan != 1", true),
            ("s < \"S\"", true),
            ("(n > 1) == ok", true),
            // Short circuit: the undecidable right side is never looked at.
            ("n < 0 && s.len() > 2", false),
        ];
        for (src, want) in decided {
            let e = parse(src).unwrap();
            assert_eq!(e.quick(&load), Some(want), "{src}");
            assert_eq!(e.eval(&lookup), Ok(want), "{src}");
        }
        // A string's length is decided here too, as the general evaluator would.
        let e = parse("s.len() > 2").unwrap();
        assert_eq!(e.quick(&load), e.eval(&lookup).ok());
        // Deferred: fields, chars, unknown names, kind mismatches (the general evaluator
        // decides or reports them).
        for src in ["c == \"x\"", "missing > 1", "n < \"a\"", "n == \"a\""] {
            let e = parse(src).unwrap();
            assert_eq!(e.quick(&load), None, "{src}");
        }
    }
}
