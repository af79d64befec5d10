//! Content codings (RFC 9110 §8.4): bodies are kept as on the wire, and
//! decoded or re-encoded only when someone asks for the content.

use std::io::{Read, Write};

/// A `content-encoding` witm can decode and re-encode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentEncoding {
    /// No coding.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// "deflate": zlib-wrapped (RFC 1950), or raw deflate as some servers send.
    Deflate,
    /// Brotli (RFC 7932).
    Brotli,
    /// Zstandard (RFC 8878).
    Zstd,
}

/// Why content could not be decoded or encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodingError {
    /// A coding witm does not know, or several stacked codings.
    Unsupported(String),
    /// The body is not valid in its coding.
    Invalid(String),
    /// Decoded, the content would exceed the limit (a decompression bomb).
    TooLarge(usize),
}

impl std::fmt::Display for CodingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodingError::Unsupported(coding) => {
                write!(f, "unsupported content-encoding {coding:?}")
            }
            CodingError::Invalid(why) => write!(f, "the body does not decode: {why}"),
            CodingError::TooLarge(limit) => write!(f, "the decoded content exceeds {limit} bytes"),
        }
    }
}

impl std::error::Error for CodingError {}

impl ContentEncoding {
    /// The coding named by a `content-encoding` value (`None`: identity).
    pub fn from_header(value: Option<&str>) -> Result<Self, CodingError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(ContentEncoding::Identity);
        };
        match value.to_ascii_lowercase().as_str() {
            "identity" => Ok(ContentEncoding::Identity),
            "gzip" | "x-gzip" => Ok(ContentEncoding::Gzip),
            "deflate" => Ok(ContentEncoding::Deflate),
            "br" => Ok(ContentEncoding::Brotli),
            "zstd" => Ok(ContentEncoding::Zstd),
            _ => Err(CodingError::Unsupported(value.to_owned())),
        }
    }

    /// Decodes `data`, refusing content larger than `limit` bytes.
    pub fn decode(self, data: &[u8], limit: usize) -> Result<Vec<u8>, CodingError> {
        let invalid = |e: std::io::Error| CodingError::Invalid(e.to_string());
        let bounded = |reader: &mut dyn Read| -> Result<Vec<u8>, CodingError> {
            let mut out = Vec::new();
            reader
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(invalid)?;
            if out.len() > limit {
                return Err(CodingError::TooLarge(limit));
            }
            Ok(out)
        };
        match self {
            ContentEncoding::Identity if data.len() > limit => Err(CodingError::TooLarge(limit)),
            ContentEncoding::Identity => Ok(data.to_vec()),
            ContentEncoding::Gzip => bounded(&mut flate2::read::MultiGzDecoder::new(data)),
            ContentEncoding::Deflate => bounded(&mut flate2::read::ZlibDecoder::new(data))
                .or_else(|_| bounded(&mut flate2::read::DeflateDecoder::new(data))),
            ContentEncoding::Brotli => bounded(&mut brotli::Decompressor::new(data, 4096)),
            ContentEncoding::Zstd => {
                bounded(&mut zstd::stream::read::Decoder::new(data).map_err(invalid)?)
            }
        }
    }

    /// Encodes `content` in this coding.
    pub fn encode(self, content: &[u8]) -> Result<Vec<u8>, CodingError> {
        let failed = |e: std::io::Error| CodingError::Invalid(e.to_string());
        match self {
            ContentEncoding::Identity => Ok(content.to_vec()),
            ContentEncoding::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(content).map_err(failed)?;
                encoder.finish().map_err(failed)
            }
            ContentEncoding::Deflate => {
                let mut encoder =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(content).map_err(failed)?;
                encoder.finish().map_err(failed)
            }
            ContentEncoding::Brotli => {
                let mut out = Vec::new();
                {
                    let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    encoder.write_all(content).map_err(failed)?;
                }
                Ok(out)
            }
            ContentEncoding::Zstd => zstd::stream::encode_all(content, 3).map_err(failed),
        }
    }
}

/// Text from bytes in the `charset` of a `content-type` (UTF-8 when none
/// is named; ISO-8859-1 and US-ASCII understood; others read as UTF-8 with
/// replacement characters).
pub fn decode_text(content: &[u8], content_type: Option<&str>) -> String {
    match charset(content_type).as_deref() {
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252") => {
            content.iter().map(|&b| b as char).collect()
        }
        _ => String::from_utf8_lossy(content).into_owned(),
    }
}

/// Bytes for `text` in the `charset` of a `content-type`; characters that
/// ISO-8859-1 cannot hold become '?'.
pub fn encode_text(text: &str, content_type: Option<&str>) -> Vec<u8> {
    match charset(content_type).as_deref() {
        Some("iso-8859-1" | "latin1" | "latin-1" | "windows-1252") => text
            .chars()
            .map(|c| u8::try_from(c).unwrap_or(b'?'))
            .collect(),
        _ => text.as_bytes().to_vec(),
    }
}

fn charset(content_type: Option<&str>) -> Option<String> {
    content_type?.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coding_round_trips() {
        let content = b"hello hello hello content coding".repeat(10);
        for coding in [
            ContentEncoding::Identity,
            ContentEncoding::Gzip,
            ContentEncoding::Deflate,
            ContentEncoding::Brotli,
            ContentEncoding::Zstd,
        ] {
            let encoded = coding.encode(&content).unwrap();
            assert_eq!(
                coding.decode(&encoded, 1 << 20).unwrap(),
                content,
                "{coding:?}"
            );
        }
    }

    #[test]
    fn bombs_and_garbage_are_refused() {
        let bomb = ContentEncoding::Gzip.encode(&vec![0u8; 1 << 20]).unwrap();
        assert_eq!(
            ContentEncoding::Gzip.decode(&bomb, 1000),
            Err(CodingError::TooLarge(1000))
        );
        assert!(matches!(
            ContentEncoding::Gzip.decode(b"not gzip", 1000),
            Err(CodingError::Invalid(_))
        ));
        assert!(matches!(
            ContentEncoding::from_header(Some("gzip, br")),
            Err(CodingError::Unsupported(_))
        ));
        assert_eq!(
            ContentEncoding::from_header(Some(" GZIP ")),
            Ok(ContentEncoding::Gzip)
        );
    }

    #[test]
    fn text_follows_the_charset() {
        assert_eq!(
            decode_text(b"caf\xe9", Some("text/plain; charset=ISO-8859-1")),
            "café"
        );
        assert_eq!(
            encode_text("café", Some("text/html; charset=\"latin1\"")),
            b"caf\xe9"
        );
        assert_eq!(decode_text("café".as_bytes(), Some("text/plain")), "café");
    }
}
