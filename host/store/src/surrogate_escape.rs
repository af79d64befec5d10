//! Bytes that are not UTF-8 in JSON text, as mitmproxy's HAR writes them.
//!
//! mitmproxy writes a request body as text (`postData.text`), decoding
//! what is not UTF-8 with Python's "surrogateescape": each such byte
//! (0x80–0xFF) becomes the lone surrogate U+DC80–U+DCFF, which `json`
//! writes as the escape `\udcXX`, and reading the HAR back turns it into
//! the byte again. So binary bodies survive a HAR in both directions.
//!
//! Rust strings cannot hold a lone surrogate (and serde_json refuses the
//! escape), so on import the escapes become the private-use characters
//! U+F780–U+F7FF before parsing ([`lone_surrogates_to_private_use`]), and
//! a body's text turns those back into bytes ([`private_use_to_bytes`]).
//! A body whose own text has characters in U+F780–U+F7FF (private use,
//! which no charset assigns) would read back as those bytes instead.

use std::borrow::Cow;
use std::fmt::Write;

/// The first of the private-use characters standing for bytes 0x80–0xFF
/// (U+F700 + byte).
const PRIVATE_BASE: u32 = 0xF700;

/// `json` with every lone `\udc80`–`\udcff` escape inside a string
/// replaced by `\uf780`–`\uf7ff`; escapes of surrogate pairs are kept.
pub(crate) fn lone_surrogates_to_private_use(json: &[u8]) -> Cow<'_, [u8]> {
    let lower = json.windows(4).any(|w| w.eq_ignore_ascii_case(b"\\udc"));
    if !lower {
        return Cow::Borrowed(json);
    }
    let hex = |at: usize| -> Option<u16> {
        let digits = std::str::from_utf8(json.get(at..at + 4)?).ok()?;
        u16::from_str_radix(digits, 16).ok()
    };
    let mut out = Vec::with_capacity(json.len());
    let mut in_string = false;
    let mut i = 0;
    while i < json.len() {
        let byte = json[i];
        if !in_string || byte != b'\\' {
            if byte == b'"' {
                in_string = !in_string;
            }
            out.push(byte);
            i += 1;
            continue;
        }
        // An escape inside a string.
        let code = (json.get(i + 1) == Some(&b'u'))
            .then(|| hex(i + 2))
            .flatten();
        match code {
            Some(0xD800..=0xDBFF) => {
                // A high surrogate: kept with the low one after it.
                let pair = json.get(i + 6..i + 8) == Some(b"\\u")
                    && matches!(hex(i + 8), Some(0xDC00..=0xDFFF));
                let len = if pair { 12 } else { 6 };
                out.extend_from_slice(&json[i..i + len]);
                i += len;
            }
            Some(low @ 0xDC80..=0xDCFF) => {
                let _ = write!(
                    Bytes(&mut out),
                    "\\u{:04x}",
                    PRIVATE_BASE + u32::from(low & 0xFF)
                );
                i += 6;
            }
            Some(_) => {
                out.extend_from_slice(&json[i..i + 6]);
                i += 6;
            }
            None => {
                out.extend_from_slice(&json[i..(i + 2).min(json.len())]);
                i += 2;
            }
        }
    }
    Cow::Owned(out)
}

/// `text` as UTF-8 bytes, with U+F780–U+F7FF as the bytes they stand for.
pub(crate) fn private_use_to_bytes(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut buffer = [0u8; 4];
    for c in text.chars() {
        match u32::from(c).checked_sub(PRIVATE_BASE) {
            Some(byte @ 0x80..=0xFF) => out.push(byte as u8),
            _ => out.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes()),
        }
    }
    out
}

/// Writes `bytes` as the contents of a JSON string (no quotes), each byte
/// that is not part of a UTF-8 character as `\udcXX`, as Python's
/// `json.dumps` writes surrogateescape text; `escape` writes valid text.
pub(crate) fn write_escaped(bytes: &[u8], out: &mut String, escape: impl Fn(&str, &mut String)) {
    for chunk in bytes.utf8_chunks() {
        escape(chunk.valid(), out);
        for byte in chunk.invalid() {
            let _ = write!(out, "\\udc{byte:02x}");
        }
    }
}

/// `fmt::Write` into a byte buffer.
struct Bytes<'a>(&'a mut Vec<u8>);

impl Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_survive_as_mitmproxy_writes_them() {
        let body = b"ok \xff\x80 \xe9t\xe9 \xf0\x9f\x98\x80 end";
        let mut text = String::new();
        write_escaped(body, &mut text, |s, out| out.push_str(s));
        assert_eq!(text, "ok \\udcff\\udc80 \\udce9t\\udce9 \u{1F600} end");
        let json =
            format!("{{\"text\": \"{text}\", \"pair\": \"\\ud83d\\ude00\", \"x\": \"\\\\udcff\"}}");
        let parsed: serde_json::Value =
            serde_json::from_slice(&lone_surrogates_to_private_use(json.as_bytes())).unwrap();
        assert_eq!(private_use_to_bytes(parsed["text"].as_str().unwrap()), body);
        assert_eq!(
            parsed["pair"], "\u{1F600}",
            "a surrogate pair is a character"
        );
        assert_eq!(parsed["x"], "\\udcff", "an escaped backslash is text");
    }

    #[test]
    fn json_without_lone_surrogates_is_not_copied() {
        assert!(matches!(
            lone_surrogates_to_private_use(b"{\"a\": \"\\u00e9\"}"),
            Cow::Borrowed(_)
        ));
    }
}
