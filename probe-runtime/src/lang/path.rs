//! Value paths such as `order.items[0].qty` or `name.len()`, parsed and evaluated against a `Value`.

use crate::lang::value::Value;
use std::borrow::Cow;
use std::fmt;

/// A root variable name followed by steps into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The variable name (an identifier, possibly `self`).
    pub root: String,
    /// Steps applied left to right.
    pub steps: Vec<Step>,
}

/// One step of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.name` or `.0` (a struct field, string map key, or tuple position).
    Field(String),
    /// `[n]` (a sequence item, tuple-variant item, or integer map key).
    Index(usize),
    /// `.len()`.
    Len,
}

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Parses a path; surrounding whitespace is ignored.
pub fn parse(s: &str) -> Result<Path, String> {
    let text = s.trim();
    // Columns are 1-based char positions in the trimmed text.
    let chars: Vec<char> = text.chars().collect();
    let err = |col: usize, what: &str| -> String {
        format!("invalid path '{text}': {what} at column {}", col + 1)
    };
    let mut i = 0;
    let ident = |i: &mut usize| -> Option<String> {
        let start = *i;
        if !chars.get(*i).is_some_and(|&c| is_ident_start(c)) {
            return None;
        }
        while chars.get(*i).is_some_and(|&c| is_ident_char(c)) {
            *i += 1;
        }
        Some(chars.get(start..*i).unwrap_or_default().iter().collect())
    };
    if chars.is_empty() {
        return Err("empty path: write a variable name such as 'order' or 'order.id'".into());
    }
    let root = match ident(&mut i) {
        Some(r) => r,
        None => {
            let c = chars.first().copied().unwrap_or(' ');
            return Err(err(0, &format!("expected a variable name but found '{c}'")));
        }
    };
    let mut steps = Vec::new();
    while let Some(&c) = chars.get(i) {
        match c {
            '.' => {
                i += 1;
                if chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    let start = i;
                    while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                        i += 1;
                    }
                    let digits: String = chars.get(start..i).unwrap_or_default().iter().collect();
                    steps.push(Step::Field(digits));
                    continue;
                }
                let start = i;
                let Some(name) = ident(&mut i) else {
                    return Err(err(start, "expected a field name or number after '.'"));
                };
                if name == "len" && chars.get(i) == Some(&'(') {
                    if chars.get(i + 1) != Some(&')') {
                        return Err(err(i + 1, "expected ')' after 'len('"));
                    }
                    i += 2;
                    steps.push(Step::Len);
                } else {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let open = i;
                i += 1;
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
                let start = i;
                while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
                    i += 1;
                }
                let digits: String = chars.get(start..i).unwrap_or_default().iter().collect();
                if digits.is_empty() {
                    return Err(err(
                        start,
                        "expected a non-negative integer index after '['",
                    ));
                }
                let Ok(n) = digits.parse::<usize>() else {
                    return Err(err(start, &format!("index {digits} is too large")));
                };
                while chars.get(i) == Some(&' ') {
                    i += 1;
                }
                if chars.get(i) != Some(&']') {
                    return Err(err(
                        i,
                        &format!("expected ']' to close '[' (opened at column {})", open + 1),
                    ));
                }
                i += 1;
                steps.push(Step::Index(n));
            }
            c => {
                return Err(err(
                    i,
                    &format!("unexpected '{c}' (use .field, .0, [n] or .len())"),
                ));
            }
        }
    }
    Ok(Path { root, steps })
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.root)?;
        for s in &self.steps {
            match s {
                Step::Field(n) => write!(f, ".{n}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
                Step::Len => f.write_str(".len()")?,
            }
        }
        Ok(())
    }
}

impl Path {
    /// Follows the steps from `root` (the value of the root variable).
    #[inline]
    pub fn eval<'v>(&self, root: &'v Value) -> Result<Cow<'v, Value>, String> {
        let mut cur: Cow<'v, Value> = Cow::Borrowed(root);
        for (n, step) in self.steps.iter().enumerate() {
            let here = || {
                Path {
                    root: self.root.clone(),
                    steps: self.steps.get(..n).unwrap_or_default().to_vec(),
                }
                .to_string()
            };
            let next: Option<Cow<'v, Value>> = match step {
                Step::Field(name) => pick(cur, |v| v.field(name)),
                Step::Index(i) => pick(cur, |v| v.index(*i)),
                Step::Len => cur
                    .len()
                    .map(|l| Cow::Owned(Value::Int(i128::try_from(l).unwrap_or(i128::MAX)))),
            };
            cur = match next {
                Some(v) => v,
                None => return Err(step_error(step, &here(), root_at(self, root, n))),
            };
        }
        Ok(cur)
    }
}

/// Applies an accessor to a borrowed or owned value, keeping the borrow when possible.
fn pick<'v>(cur: Cow<'v, Value>, f: impl Fn(&Value) -> Option<&Value>) -> Option<Cow<'v, Value>> {
    match cur {
        Cow::Borrowed(v) => f(v).map(Cow::Borrowed),
        Cow::Owned(v) => f(&v).cloned().map(Cow::Owned),
    }
}

/// The value reached after `n` steps (used only to build error messages).
fn root_at<'v>(path: &Path, root: &'v Value, n: usize) -> Option<Cow<'v, Value>> {
    let prefix = Path {
        root: path.root.clone(),
        steps: path.steps.get(..n).unwrap_or_default().to_vec(),
    };
    prefix.eval(root).ok()
}

/// `kind` with an indefinite article: "an integer", "a string".
pub fn a(kind: &str) -> String {
    let vowel = kind.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {kind}", if vowel { "an" } else { "a" })
}

fn step_error(step: &Step, here: &str, at: Option<Cow<'_, Value>>) -> String {
    let Some(v) = at else {
        return format!("cannot evaluate {here}");
    };
    match step {
        Step::Field(name) => {
            let names = v.field_names();
            if !names.is_empty() {
                let mut list = names
                    .iter()
                    .take(20)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ");
                if names.len() > 20 {
                    list.push_str(", …");
                }
                format!("no field '{name}' in {here} (fields: {list})")
            } else if let Some(len) = v
                .len()
                .filter(|_| matches!(*v, Value::Seq(_) | Value::Variant { .. }))
            {
                format!(
                    "no field '{name}' in {here} (it is {} of {len} items; use .0 or [0])",
                    a(v.kind())
                )
            } else {
                format!("no field '{name}' in {here} (it is {})", a(v.kind()))
            }
        }
        Step::Index(i) => match v.len() {
            Some(len) if matches!(*v, Value::Seq(_) | Value::Variant { .. }) => {
                format!("index {i} out of range (len {len}) in {here}")
            }
            _ if matches!(*v, Value::Map(_)) => format!("no key {i} in map {here}"),
            _ => format!("cannot index {here} with [{i}] (it is {})", a(v.kind())),
        },
        Step::Len => format!("{here} has no length (it is {})", a(v.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::value::parse_debug;

    fn order() -> Value {
        parse_debug(
            r#"Order { id: 7, customer: "Ann", items: [Item { qty: 2 }, Item { qty: 5 }], pair: (1, "b"), tag: Some(Tag(4)) }"#,
        )
    }

    fn ev(p: &str, v: &Value) -> Result<Value, String> {
        parse(p)?.eval(v).map(|c| c.into_owned())
    }

    #[test]
    fn parses_all_step_kinds() {
        let p = parse("  order.items[0].qty ").unwrap();
        assert_eq!(p.root, "order");
        assert_eq!(
            p.steps,
            vec![
                Step::Field("items".into()),
                Step::Index(0),
                Step::Field("qty".into())
            ]
        );
        assert_eq!(p.to_string(), "order.items[0].qty");
        let p = parse("self.0.len()").unwrap();
        assert_eq!(p.root, "self");
        assert_eq!(p.steps, vec![Step::Field("0".into()), Step::Len]);
        assert_eq!(parse("x[ 3 ]").unwrap().steps, vec![Step::Index(3)]);
        assert_eq!(parse("_a1").unwrap().steps, vec![]);
        // A field literally named `len` is still a field.
        assert_eq!(
            parse("a.len").unwrap().steps,
            vec![Step::Field("len".into())]
        );
    }

    #[test]
    fn parse_errors_say_where() {
        assert_eq!(
            parse("order..id").unwrap_err(),
            "invalid path 'order..id': expected a field name or number after '.' at column 7"
        );
        assert_eq!(
            parse("1abc").unwrap_err(),
            "invalid path '1abc': expected a variable name but found '1' at column 1"
        );
        assert_eq!(
            parse("a[x]").unwrap_err(),
            "invalid path 'a[x]': expected a non-negative integer index after '[' at column 3"
        );
        assert_eq!(
            parse("a[1").unwrap_err(),
            "invalid path 'a[1': expected ']' to close '[' (opened at column 2) at column 4"
        );
        assert!(parse("a b").unwrap_err().contains("unexpected ' '"));
        assert!(parse("a.len(").unwrap_err().contains("expected ')'"));
        assert!(parse("a[99999999999999999999999]")
            .unwrap_err()
            .contains("too large"));
        assert!(parse("").unwrap_err().starts_with("empty path"));
        assert!(parse("a.").is_err());
    }

    #[test]
    fn evaluates() {
        let o = order();
        assert_eq!(ev("order", &o).unwrap(), o);
        assert_eq!(ev("order.id", &o), Ok(Value::Int(7)));
        assert_eq!(ev("order.items[1].qty", &o), Ok(Value::Int(5)));
        assert_eq!(ev("order.items.len()", &o), Ok(Value::Int(2)));
        assert_eq!(ev("order.customer.len()", &o), Ok(Value::Int(3)));
        assert_eq!(ev("order.pair.1", &o), Ok(Value::Str("b".into())));
        assert_eq!(ev("order.pair[0]", &o), Ok(Value::Int(1)));
        assert_eq!(ev("order.tag.0", &o), Ok(Value::Int(4)));
        // Borrowed all the way when no Len step is involved.
        let p = parse("order.items[0]").unwrap();
        assert!(matches!(p.eval(&o), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn eval_errors_are_helpful() {
        let o = order();
        assert_eq!(
            ev("order.x", &o).unwrap_err(),
            "no field 'x' in order (fields: id, customer, items, pair, tag)"
        );
        assert_eq!(
            ev("order.items[5]", &o).unwrap_err(),
            "index 5 out of range (len 2) in order.items"
        );
        assert_eq!(
            ev("order.id.x", &o).unwrap_err(),
            "no field 'x' in order.id (it is an integer)"
        );
        assert_eq!(
            ev("order.id.len()", &o).unwrap_err(),
            "order.id has no length (it is an integer)"
        );
        assert_eq!(
            ev("order.id[0]", &o).unwrap_err(),
            "cannot index order.id with [0] (it is an integer)"
        );
        assert_eq!(
            ev("order.items.len().x", &o).unwrap_err(),
            "no field 'x' in order.items.len() (it is an integer)"
        );
        assert!(ev("order.items.qty", &o)
            .unwrap_err()
            .contains("use .0 or [0]"));
    }
}
