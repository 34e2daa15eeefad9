//! Random nested values, printed by a `Debug` of the shapes real types print (derived
//! structs, tuples, maps, `Option`s, enums), with secrets in the places redaction promises to
//! cover: fields and string map keys with secret names, `(name, value)` pairs such as headers,
//! variables with secret names, and types listed in `LPROBE_REDACT_TYPES`. Printed twice with
//! two different secrets of the same length: every output must be the same both times.

use std::fmt;

use arbitrary::{Result, Unstructured};

/// The two secrets (same length, different in every byte).
pub const SECRETS: [&str; 2] = ["AaAaAaAaAaAaAaAaAa", "ZzZzZzZzZzZzZzZzZz"];
pub const SECRET_INTS: [i64; 2] = [1_111_111_111, 9_999_999_999];

/// Field, key and variable names that are secret (built in, or by `LPROBE_REDACT` below).
pub const SECRET_NAMES: [&str; 16] = [
    "password",
    "api_key",
    "x_api_key",
    "dbPassword",
    "refresh_token",
    "pwd",
    "authorization",
    "session_id",
    "client_secret",
    "privateKey",
    "Cookie",
    "pin",
    "jwt",
    "ssn",
    "zz_custom",
    "bearer_value",
];
/// Names of header-like pairs and string map keys that are secret.
pub const SECRET_KEYS: [&str; 7] = [
    "authorization",
    "Authorization",
    "X-Api-Key",
    "set-cookie",
    "access_token",
    "Proxy-Authorization",
    "zz_header",
];
/// `LPROBE_REDACT`: extra secret names.
pub const REDACT: &str = "^zz_";
/// `LPROBE_REDACT_TYPES`: types never formatted.
pub const REDACT_TYPES: &str = "Vault,app::Keyring";

/// Sets the redaction environment once, before the runtime first reads it.
pub fn init_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("LPROBE_REDACT", REDACT);
        std::env::set_var("LPROBE_REDACT_TYPES", REDACT_TYPES);
    });
}

#[derive(Debug)]
pub enum Node {
    Int(i64),
    Float(f64),
    Bool(bool),
    Char(char),
    Str(String),
    None,
    Some(Box<Node>),
    Unit(String),
    List(Vec<Node>),
    Tuple(Vec<Node>),
    /// `(name, value)`, e.g. a header; secret when the name is.
    Pair(String, Box<Node>, bool),
    Struct(String, Vec<(String, Node, bool)>),
    Variant(String, Vec<Node>),
    /// String-keyed map; the flag marks a secret key.
    Map(Vec<(String, Node, bool)>),
    /// A struct of a redacted type: everything in it is secret.
    Vault(String, Vec<(String, Node)>),
    /// A secret leaf (only under a secret place).
    Secret(bool),
}

fn ident(u: &mut Unstructured<'_>, upper: bool) -> Result<String> {
    let len = u.int_in_range(1..=8)?;
    let mut s = String::new();
    for i in 0..len {
        let c = *u.choose(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789")?;
        let c = if i == 0 && c.is_ascii_digit() {
            b'f'
        } else {
            c
        };
        s.push(if i == 0 && upper {
            c.to_ascii_uppercase()
        } else {
            c
        } as char);
    }
    Ok(s)
}

/// A node; `secret`: it stands in a secret place, so its leaves are the secret.
pub fn node(u: &mut Unstructured<'_>, depth: usize, secret: bool) -> Result<Node> {
    let leaf = depth > 40 || u.is_empty();
    let pick = if leaf {
        u.int_in_range(0..=6)?
    } else {
        u.int_in_range(0..=16)?
    };
    Ok(match pick {
        0 if secret => Node::Secret(false),
        0 => Node::Str(u.arbitrary()?),
        1 if secret => Node::Secret(true),
        1 => Node::Int(u.arbitrary()?),
        2 => Node::Float(u.arbitrary()?),
        3 => Node::Bool(u.arbitrary()?),
        4 => Node::Char(u.arbitrary()?),
        5 => Node::None,
        6 => Node::Unit(ident(u, true)?),
        7 => Node::Some(Box::new(node(u, depth + 1, secret)?)),
        8 | 9 => Node::List(items(u, depth, secret)?),
        10 => Node::Tuple(items(u, depth, secret)?),
        11 => {
            let s = u.arbitrary::<bool>()?;
            let name = if s {
                (*u.choose(&SECRET_KEYS)?).to_owned()
            } else {
                u.arbitrary()?
            };
            Node::Pair(name, Box::new(node(u, depth + 1, secret || s)?), s)
        }
        12 | 13 => {
            let name = ident(u, true)?;
            let mut fields = Vec::new();
            for _ in 0..u.int_in_range(0..=5)? {
                let s = u.arbitrary::<bool>()?;
                let f = if s {
                    (*u.choose(&SECRET_NAMES)?).to_owned()
                } else {
                    ident(u, false)?
                };
                fields.push((f, node(u, depth + 1, secret || s)?, s));
            }
            Node::Struct(name, fields)
        }
        14 => Node::Variant(ident(u, true)?, items(u, depth, secret)?),
        15 => {
            let mut entries = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                let s = u.arbitrary::<bool>()?;
                let k = if s {
                    (*u.choose(&SECRET_KEYS)?).to_owned()
                } else {
                    u.arbitrary()?
                };
                entries.push((k, node(u, depth + 1, secret || s)?, s));
            }
            Node::Map(entries)
        }
        _ => {
            let name = (*u.choose(&["Vault", "Keyring", "app::Keyring"])?).to_owned();
            let mut fields = Vec::new();
            for _ in 0..u.int_in_range(0..=3)? {
                fields.push((ident(u, false)?, node(u, depth + 1, true)?));
            }
            Node::Vault(name, fields)
        }
    })
}

fn items(u: &mut Unstructured<'_>, depth: usize, secret: bool) -> Result<Vec<Node>> {
    let mut v = Vec::new();
    for _ in 0..u.int_in_range(0..=6)? {
        v.push(node(u, depth + 1, secret)?);
    }
    Ok(v)
}

/// A node printed with secret number `which` in its secret places.
pub struct Show<'a>(pub &'a Node, pub usize);

impl fmt::Debug for Show<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.1;
        let s = |n| Show(n, w);
        match self.0 {
            Node::Int(i) => fmt::Debug::fmt(i, f),
            Node::Float(x) => fmt::Debug::fmt(x, f),
            Node::Bool(b) => fmt::Debug::fmt(b, f),
            Node::Char(c) => fmt::Debug::fmt(c, f),
            Node::Str(t) => fmt::Debug::fmt(t, f),
            Node::None => f.write_str("None"),
            Node::Some(n) => f.debug_tuple("Some").field(&s(n)).finish(),
            Node::Unit(n) => f.write_str(n),
            Node::List(v) => f.debug_list().entries(v.iter().map(s)).finish(),
            Node::Tuple(v) => {
                let mut t = f.debug_tuple("");
                for n in v {
                    t.field(&s(n));
                }
                t.finish()
            }
            Node::Pair(k, v, _) => f.debug_tuple("").field(k).field(&s(v)).finish(),
            Node::Struct(name, fields) => {
                let mut d = f.debug_struct(name);
                for (k, v, _) in fields {
                    d.field(k, &s(v));
                }
                d.finish()
            }
            Node::Variant(name, v) => {
                let mut t = f.debug_tuple(name);
                for n in v {
                    t.field(&s(n));
                }
                t.finish()
            }
            Node::Map(entries) => f
                .debug_map()
                .entries(entries.iter().map(|(k, v, _)| (k, s(v))))
                .finish(),
            Node::Vault(name, fields) => {
                let mut d = f.debug_struct(name);
                for (k, v) in fields {
                    d.field(k, &s(v));
                }
                d.finish()
            }
            Node::Secret(false) => fmt::Debug::fmt(SECRETS[w], f),
            Node::Secret(true) => fmt::Debug::fmt(&SECRET_INTS[w], f),
        }
    }
}
