//! Conditions (`expr`), templates (`template`) and paths (`path`) over captured values, as a
//! hit decides and writes them: first line a condition, second a log template, third a path.
//! No panic, bounded output, and no oracle on secrets: the condition's outcome, and the log line
//! are the same whichever secret the values hold.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use lprobe_fuzz::tree::{init_env, SECRETS};
use lprobe_fuzz::{bounded, bounded_len, text};
use probe_runtime::value;
use probe_runtime::{expr, fuzzing, path, template, ByCopy, ByRef, Val};

#[derive(Debug)]
#[allow(dead_code)]
struct Account {
    name: String,
    password: &'static str,
    history: Vec<u32>,
    balance: i64,
    owner: Option<Box<Account>>,
}

fn outputs(cond: Option<&expr::Expr>, tpl: Option<&template::Template>, w: usize) -> String {
    let secret = SECRETS[w];
    let account = Account {
        name: "bob".into(),
        password: secret,
        history: vec![1, 2, 3],
        balance: -5,
        owner: Some(Box::new(Account {
            name: "eve \"x\"".into(),
            password: secret,
            history: Vec::new(),
            balance: 0,
            owner: None,
        })),
    };
    let headers = vec![
        ("content-type".to_string(), "text/plain".to_string()),
        ("authorization".to_string(), format!("Bearer {secret}")),
    ];
    let map: BTreeMap<&str, i32> = [("a", 1), ("b", 2)].into();
    let name = "alice";
    let opt: Option<u32> = Some(7);
    let vals: [(&str, Val<'_>); 11] = [
        ("x", &ByCopy(42i64)),
        ("n", &ByCopy(-3i32)),
        ("ratio", &ByCopy(0.5f64)),
        ("flag", &ByCopy(true)),
        ("c", &ByCopy('é')),
        ("name", &ByCopy(name)),
        ("account", &ByRef(&account)),
        ("headers", &ByRef(&headers)),
        ("password", &ByCopy(secret)),
        ("opt", &ByRef(&opt)),
        ("map", &ByRef(&map)),
    ];
    let mut out = String::new();
    if let Some(c) = cond {
        out.push_str(&format!("{:?}\n", fuzzing::condition(c, &vals)));
    }
    if let Some(t) = tpl {
        out.push_str(&fuzzing::log(Some(t), &vals));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    init_env();
    let input = text(data);
    let mut lines = input.splitn(3, '\n');
    let (c, t, p) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    bounded("condition", || {
        let cond = expr::parse(c);
        if let Ok(e) = &cond {
            let _ = (e.roots(), e.source(), e.node().to_string());
        }
        let tpl = template::parse(t);
        if let Ok(tp) = &tpl {
            let _ = (tp.roots(), tp.is_literal());
        }
        let [a, b] = [0, 1].map(|w| outputs(cond.as_ref().ok(), tpl.as_ref().ok(), w));
        bounded_len("condition/log output", &a, 16 * input.len() + 8192);
        assert_eq!(a, b, "the secret changes the outcome of {c:?} / {t:?}");
        if let Ok(path) = path::parse(p) {
            let _ = path.to_string();
            for text in [
                "Account { name: \"bob\", history: [1, 2], owner: Some(Account { x: 1 }) }",
                "[(\"a\", 1), (\"b\", 2)]",
                "{\"k\": [1.5, -2, 'c', None]}",
                "Ok(\"é\")",
            ] {
                let v = value::parse_debug(text);
                if let Ok(r) = path.eval(&v) {
                    let mut s = String::new();
                    template::push_text(&mut s, &r);
                    bounded_len("path result", &s, 4096);
                }
            }
        }
    });
});
