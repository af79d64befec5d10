//! Metadata values with their types.
//!
//! mitmproxy's `flow.metadata` holds any Python value, and its captures
//! save them typed (tnetstring). witm keeps the type, so a capture read and
//! written back (witm's format, mitmproxy's `.flow`, HAR) says the same
//! thing; plugins, which set text, make [`MetaValue::Str`] values, and see
//! other values as text ([`MetaValue::text`]).

use std::borrow::Cow;
use std::fmt::Write;

/// One metadata value (the types tnetstring, and so mitmproxy, saves).
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    /// Python's `None`.
    Null,
    /// A truth value.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// Bytes (Python's `bytes`).
    Bytes(Vec<u8>),
    /// Text: what plugins set.
    Str(String),
    /// A list (or tuple).
    List(Vec<MetaValue>),
    /// A dictionary, its pairs in order.
    Dict(Vec<(MetaValue, MetaValue)>),
}

/// What a value costs the host beyond its bytes, per nested value.
const NESTED_OVERHEAD: usize = 16;

impl MetaValue {
    /// The value as a plugin sees it: text as it is, bytes decoded lossily,
    /// a number or truth value as Python writes it, and a list or dict as
    /// JSON, which a plugin can parse back.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            MetaValue::Str(s) => Cow::Borrowed(s),
            MetaValue::Bytes(b) => String::from_utf8_lossy(b),
            MetaValue::List(_) | MetaValue::Dict(_) => {
                let mut out = String::new();
                self.write_json(&mut out);
                Cow::Owned(out)
            }
            scalar => Cow::Owned(scalar.python_str()),
        }
    }

    /// The value as Python's `str()` writes it (what mitmproxy's `~meta`
    /// filter matches against).
    pub fn python_str(&self) -> String {
        match self {
            MetaValue::Str(s) => s.clone(),
            other => {
                let mut out = String::new();
                other.write_repr(&mut out);
                out
            }
        }
    }

    /// The bytes the host holds for it, for memory budgets.
    pub fn held_bytes(&self) -> usize {
        match self {
            MetaValue::Null | MetaValue::Bool(_) | MetaValue::Int(_) | MetaValue::Float(_) => 8,
            MetaValue::Bytes(b) => b.len(),
            MetaValue::Str(s) => s.len(),
            MetaValue::List(items) => items.iter().map(|v| v.held_bytes() + NESTED_OVERHEAD).sum(),
            MetaValue::Dict(pairs) => pairs
                .iter()
                .map(|(k, v)| k.held_bytes() + v.held_bytes() + 2 * NESTED_OVERHEAD)
                .sum(),
        }
    }

    /// Python's `repr()`.
    fn write_repr(&self, out: &mut String) {
        match self {
            MetaValue::Null => out.push_str("None"),
            MetaValue::Bool(true) => out.push_str("True"),
            MetaValue::Bool(false) => out.push_str("False"),
            MetaValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            MetaValue::Float(f) => out.push_str(&python_float(*f)),
            MetaValue::Str(s) => python_str_repr(s, out),
            MetaValue::Bytes(b) => python_bytes_repr(b, out),
            MetaValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_repr(out);
                }
                out.push(']');
            }
            MetaValue::Dict(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out);
                    out.push_str(": ");
                    v.write_repr(out);
                }
                out.push('}');
            }
        }
    }

    /// JSON; dictionary keys that are not text are written as their JSON.
    fn write_json(&self, out: &mut String) {
        match self {
            MetaValue::Null => out.push_str("null"),
            MetaValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            MetaValue::Int(i) => {
                let _ = write!(out, "{i}");
            }
            MetaValue::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f}");
            }
            MetaValue::Float(_) => out.push_str("null"),
            MetaValue::Str(s) => json_string(s, out),
            MetaValue::Bytes(b) => json_string(&String::from_utf8_lossy(b), out),
            MetaValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            MetaValue::Dict(pairs) => {
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    match k {
                        MetaValue::Str(_) | MetaValue::Bytes(_) => k.write_json(out),
                        other => {
                            let mut key = String::new();
                            other.write_json(&mut key);
                            json_string(&key, out);
                        }
                    }
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<String> for MetaValue {
    fn from(s: String) -> Self {
        MetaValue::Str(s)
    }
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::Str(s.to_owned())
    }
}

/// A float as Python's `repr` writes it: always with a point or exponent.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        "nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else if f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        let shortest = format!("{f:e}");
        // Python switches to exponents outside 1e-4 ≤ |f| < 1e16.
        if (1e-4..1e16).contains(&f.abs()) {
            format!("{f}")
        } else {
            let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
            let exponent: i32 = exponent.parse().unwrap_or(0);
            format!(
                "{mantissa}e{}{:02}",
                if exponent < 0 { '-' } else { '+' },
                exponent.abs()
            )
        }
    }
}

/// Python's `repr` of a `str`: single quotes unless the text holds one and
/// no double quote.
fn python_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// Python's `repr` of `bytes`.
fn python_bytes_repr(b: &[u8], out: &mut String) {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push('b');
    out.push(quote as char);
    for &byte in b {
        match byte {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            q if q == quote => {
                out.push('\\');
                out.push(q as char);
            }
            0x20..=0x7e => out.push(byte as char),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
    out.push(quote as char);
}

/// A JSON string literal.
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> MetaValue {
        MetaValue::Dict(vec![
            ("b".into(), MetaValue::Bool(true)),
            (
                "key".into(),
                MetaValue::List(vec![MetaValue::Int(1), MetaValue::Null]),
            ),
        ])
    }

    #[test]
    fn plugins_see_text_as_is_and_containers_as_json() {
        assert_eq!(MetaValue::from("plain").text(), "plain");
        assert_eq!(dict().text(), r#"{"b":true,"key":[1,null]}"#);
        assert_eq!(MetaValue::Bool(false).text(), "False");
        assert_eq!(MetaValue::Null.text(), "None");
        assert_eq!(MetaValue::Float(2.0).text(), "2.0");
        assert_eq!(
            MetaValue::Str("quote\"d".into()).text(),
            "quote\"d",
            "text is not escaped"
        );
    }

    #[test]
    fn filters_see_what_python_str_gives() {
        assert_eq!(dict().python_str(), "{'b': True, 'key': [1, None]}");
        assert_eq!(
            MetaValue::List(vec![
                MetaValue::Bytes(b"a'\x00".to_vec()),
                MetaValue::Str("it's".into()),
                MetaValue::Float(0.5),
                MetaValue::Float(1e20),
                MetaValue::Float(1.5e-7),
            ])
            .python_str(),
            r#"[b"a'\x00", "it's", 0.5, 1e+20, 1.5e-07]"#
        );
        assert_eq!(MetaValue::Str("top".into()).python_str(), "top");
    }

    #[test]
    fn held_bytes_grow_with_nesting() {
        let one = MetaValue::List(vec![MetaValue::Str("x".repeat(100))]);
        let two = MetaValue::List(vec![one.clone(), one.clone()]);
        assert!(two.held_bytes() > 2 * one.held_bytes());
    }
}
