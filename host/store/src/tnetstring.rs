//! Typed netstrings (<https://tnetstrings.info>), the encoding of mitmproxy's
//! flow files and of one record in witm's own.
//!
//! A value is `LENGTH:PAYLOAD` followed by one type byte: `,` bytes, `;` text,
//! `#` integer, `^` float, `!` boolean, `~` null, `]` list, `}` dictionary.
//! Every value says how long it is, so a reader can skip what it does not
//! know and a truncated file is noticed rather than misread.

use bytes::Bytes;
use witm_flow::MetaValue;

/// A decoded value. Byte strings share the buffer they were read from, so
/// reading a flow file does not copy bodies.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`
    Null,
    /// `!`
    Bool(bool),
    /// `#`
    Int(i64),
    /// `^`
    Float(f64),
    /// `,`: raw bytes.
    Bytes(Bytes),
    /// `;`: UTF-8 text.
    Str(String),
    /// `]`
    List(Vec<Value>),
    /// `}`: pairs in file order (keys are usually `Str`; very old mitmproxy
    /// files used `Bytes`).
    Dict(Vec<(Value, Value)>),
}

/// Why bytes are not a valid tnetstring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset of the value that is wrong, from the start of the input.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
    /// True when the input simply ended early (the value would be fine with
    /// more bytes): a truncated file rather than a corrupt one.
    pub truncated: bool,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for DecodeError {}

/// Nesting deeper than this is refused, so a hostile file cannot overflow the
/// stack; real flows nest five or six levels.
const MAX_DEPTH: usize = 64;

/// Longest length prefix accepted (digits): a terabyte is 13.
const MAX_LENGTH_DIGITS: usize = 15;

impl Value {
    /// A text value.
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A dictionary with text keys.
    pub fn dict<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (Value::Str(k.into()), v))
                .collect(),
        )
    }

    /// `Str` or `Null` from an optional string.
    pub fn opt_str(s: Option<&str>) -> Value {
        s.map_or(Value::Null, Value::str)
    }

    /// The value under `key` in a dictionary (text or bytes key).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value under `key`, to change it.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Dict(pairs) => pairs
                .iter_mut()
                .find(|(k, _)| k.as_bytes() == Some(key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Sets `key` in a dictionary (added at the end when new).
    pub fn set(&mut self, key: &str, value: Value) {
        if let Some(slot) = self.get_mut(key) {
            *slot = value;
        } else if let Value::Dict(pairs) = self {
            pairs.push((Value::str(key), value));
        }
    }

    /// Removes `key` from a dictionary and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        match self {
            Value::Dict(pairs) => {
                let i = pairs
                    .iter()
                    .position(|(k, _)| k.as_bytes() == Some(key.as_bytes()))?;
                Some(pairs.remove(i).1)
            }
            _ => None,
        }
    }

    /// The bytes of a `Bytes` or `Str` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A `Bytes` or `Str` value as text (bytes decoded lossily).
    pub fn as_string(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// An integer (a float is truncated).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) => Some(*f as i64),
            _ => None,
        }
    }

    /// A number as a float.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A list's items.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// True for `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn payload_len(v: &Value) -> usize {
            match v {
                Value::Null => 0,
                Value::Bool(true) => 4,
                Value::Bool(false) => 5,
                Value::Int(i) => digits_i64(*i),
                Value::Float(f) => format_float(*f).len(),
                Value::Bytes(b) => b.len(),
                Value::Str(s) => s.len(),
                Value::List(items) => items.iter().map(encoded_len).sum(),
                Value::Dict(pairs) => pairs
                    .iter()
                    .map(|(k, v)| encoded_len(k) + encoded_len(v))
                    .sum(),
            }
        }
        fn encoded_len(v: &Value) -> usize {
            let n = payload_len(v);
            digits_i64(n as i64) + n + 2
        }
        fn write(v: &Value, out: &mut Vec<u8>) {
            let n = payload_len(v);
            out.extend_from_slice(n.to_string().as_bytes());
            out.push(b':');
            let tag = match v {
                Value::Null => b'~',
                Value::Bool(b) => {
                    out.extend_from_slice(if *b { b"true" } else { b"false" });
                    b'!'
                }
                Value::Int(i) => {
                    out.extend_from_slice(i.to_string().as_bytes());
                    b'#'
                }
                Value::Float(f) => {
                    out.extend_from_slice(format_float(*f).as_bytes());
                    b'^'
                }
                Value::Bytes(b) => {
                    out.extend_from_slice(b);
                    b','
                }
                Value::Str(s) => {
                    out.extend_from_slice(s.as_bytes());
                    b';'
                }
                Value::List(items) => {
                    items.iter().for_each(|i| write(i, out));
                    b']'
                }
                Value::Dict(pairs) => {
                    for (k, v) in pairs {
                        write(k, out);
                        write(v, out);
                    }
                    b'}'
                }
            };
            out.push(tag);
        }
        write(self, out);
    }

    /// The encoding of this value.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

fn digits_i64(i: i64) -> usize {
    let sign = usize::from(i < 0);
    let mut n = i.unsigned_abs();
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits + sign
}

/// Floats as Python's `repr` would read them back: always with a point or an
/// exponent.
fn format_float(f: f64) -> String {
    let s = format!("{f:?}");
    if s == "inf" || s == "-inf" || s == "NaN" {
        "0.0".into()
    } else {
        s
    }
}

/// A metadata value as tnetstring keeps it (witm's files, mitmproxy's).
impl From<&MetaValue> for Value {
    fn from(value: &MetaValue) -> Self {
        match value {
            MetaValue::Null => Value::Null,
            MetaValue::Bool(b) => Value::Bool(*b),
            MetaValue::Int(i) => Value::Int(*i),
            MetaValue::Float(f) => Value::Float(*f),
            MetaValue::Bytes(b) => Value::Bytes(Bytes::copy_from_slice(b)),
            MetaValue::Str(s) => Value::Str(s.clone()),
            MetaValue::List(items) => Value::List(items.iter().map(Value::from).collect()),
            MetaValue::Dict(pairs) => Value::Dict(
                pairs
                    .iter()
                    .map(|(k, v)| (Value::from(k), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

/// A tnetstring value as a metadata value, type for type.
impl From<&Value> for MetaValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::Null => MetaValue::Null,
            Value::Bool(b) => MetaValue::Bool(*b),
            Value::Int(i) => MetaValue::Int(*i),
            Value::Float(f) => MetaValue::Float(*f),
            Value::Bytes(b) => MetaValue::Bytes(b.to_vec()),
            Value::Str(s) => MetaValue::Str(s.clone()),
            Value::List(items) => MetaValue::List(items.iter().map(MetaValue::from).collect()),
            Value::Dict(pairs) => MetaValue::Dict(
                pairs
                    .iter()
                    .map(|(k, v)| (MetaValue::from(k), MetaValue::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Decodes the one value at the start of `input`; returns it and the number
/// of bytes it took.
pub fn decode(input: &Bytes) -> Result<(Value, usize), DecodeError> {
    decode_at(input, 0, 0)
}

/// Reads the `LENGTH:` prefix at `offset`: the payload's length and where the
/// payload starts. `Ok(None)`-like truncation is an error with `truncated`.
pub fn read_length(input: &[u8], offset: usize) -> Result<(usize, usize), DecodeError> {
    let error = |message: String, truncated| DecodeError {
        offset,
        message,
        truncated,
    };
    let rest = &input[offset.min(input.len())..];
    let Some(colon) = rest
        .iter()
        .take(MAX_LENGTH_DIGITS + 1)
        .position(|&b| b == b':')
    else {
        if rest.len() <= MAX_LENGTH_DIGITS && rest.iter().all(u8::is_ascii_digit) {
            return Err(error("the file ends inside a length".into(), true));
        }
        return Err(error("expected a length followed by ':'".into(), false));
    };
    let digits = &rest[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(error(
            format!(
                "expected a length, found {:?}",
                String::from_utf8_lossy(digits)
            ),
            false,
        ));
    }
    let length: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| error("length out of range".into(), false))?;
    Ok((length, offset + colon + 1))
}

fn decode_at(input: &Bytes, offset: usize, depth: usize) -> Result<(Value, usize), DecodeError> {
    let error = |message: String| DecodeError {
        offset,
        message,
        truncated: false,
    };
    if depth > MAX_DEPTH {
        return Err(error(format!("values nested deeper than {MAX_DEPTH}")));
    }
    let (length, start) = read_length(input, offset)?;
    let end = start
        .checked_add(length)
        .filter(|&end| end < input.len())
        .ok_or(DecodeError {
            offset,
            message: format!("the file ends inside a value of {length} bytes"),
            truncated: true,
        })?;
    let payload = &input[start..end];
    let text = || std::str::from_utf8(payload).map_err(|_| error("text that is not UTF-8".into()));
    let value = match input[end] {
        b',' => Value::Bytes(input.slice(start..end)),
        b';' => Value::Str(text()?.to_owned()),
        b'#' => Value::Int(text()?.parse().map_err(|_| {
            error(format!(
                "bad integer {:?}",
                String::from_utf8_lossy(payload)
            ))
        })?),
        b'^' => Value::Float(
            text()?
                .parse()
                .map_err(|_| error(format!("bad float {:?}", String::from_utf8_lossy(payload))))?,
        ),
        b'!' => match payload {
            b"true" => Value::Bool(true),
            b"false" => Value::Bool(false),
            _ => return Err(error("bad boolean".into())),
        },
        b'~' if payload.is_empty() => Value::Null,
        b']' => {
            let mut items = Vec::new();
            let mut at = start;
            while at < end {
                let (item, used) =
                    decode_at(&input.slice(..end), at, depth + 1).map_err(|e| DecodeError {
                        truncated: false,
                        ..e
                    })?;
                items.push(item);
                at += used;
            }
            Value::List(items)
        }
        b'}' => {
            let mut pairs = Vec::new();
            let mut at = start;
            let inner = input.slice(..end);
            while at < end {
                let (key, used) = decode_at(&inner, at, depth + 1).map_err(|e| DecodeError {
                    truncated: false,
                    ..e
                })?;
                at += used;
                if at >= end {
                    return Err(error("a dictionary key without a value".into()));
                }
                let (value, used) = decode_at(&inner, at, depth + 1).map_err(|e| DecodeError {
                    truncated: false,
                    ..e
                })?;
                at += used;
                pairs.push((key, value));
            }
            Value::Dict(pairs)
        }
        other => {
            return Err(error(format!(
                "unknown type {:?}",
                char::from(other).escape_default().to_string()
            )));
        }
    };
    Ok((value, end + 1 - offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: Value) {
        let bytes = Bytes::from(v.to_vec());
        let (back, used) = decode(&bytes).unwrap();
        assert_eq!(back, v);
        assert_eq!(used, bytes.len());
    }

    #[test]
    fn every_type_round_trips() {
        round_trip(Value::Null);
        round_trip(Value::Bool(true));
        round_trip(Value::Bool(false));
        round_trip(Value::Int(-1234567890123));
        round_trip(Value::Int(0));
        round_trip(Value::Float(1795925364.5081284));
        round_trip(Value::Bytes(Bytes::from_static(b"\x00\xff:,]}")));
        round_trip(Value::str("héllo"));
        round_trip(Value::List(vec![
            Value::Int(1),
            Value::List(vec![]),
            Value::Null,
        ]));
        round_trip(Value::dict([
            ("a", Value::Int(1)),
            ("b", Value::dict([("c", Value::str("d"))])),
        ]));
    }

    #[test]
    fn known_encodings() {
        assert_eq!(Value::str("hi").to_vec(), b"2:hi;");
        assert_eq!(Value::Int(12).to_vec(), b"2:12#");
        assert_eq!(Value::Null.to_vec(), b"0:~");
        assert_eq!(
            Value::dict([("a", Value::Bool(true))]).to_vec(),
            b"11:1:a;4:true!}"
        );
    }

    #[test]
    fn truncation_is_told_apart_from_corruption() {
        let full = Value::dict([("k", Value::str("value"))]).to_vec();
        for cut in 1..full.len() {
            let err = decode(&Bytes::copy_from_slice(&full[..cut])).unwrap_err();
            assert!(err.truncated, "cut at {cut}: {err}");
        }
        let err = decode(&Bytes::from_static(b"3:abcX")).unwrap_err();
        assert!(!err.truncated);
        assert!(err.message.contains("unknown type"));
        let err = decode(&Bytes::from_static(b"x:abc,")).unwrap_err();
        assert!(!err.truncated);
        // A child claiming more than its parent holds is corruption, not truncation.
        let err = decode(&Bytes::from_static(b"4:9:ab]rest-of-file")).unwrap_err();
        assert!(!err.truncated, "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut v = Value::Null;
        for _ in 0..200 {
            v = Value::List(vec![v]);
        }
        let err = decode(&Bytes::from(v.to_vec())).unwrap_err();
        assert!(err.message.contains("nested"));
    }
}
