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
    /// The caller's `stop` said to give up (a deadline passed).
    Stopped,
}

impl std::fmt::Display for CodingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodingError::Unsupported(coding) => {
                write!(f, "unsupported content-encoding {coding:?}")
            }
            CodingError::Invalid(why) => write!(f, "the body does not decode: {why}"),
            CodingError::TooLarge(limit) => write!(f, "the decoded content exceeds {limit} bytes"),
            CodingError::Stopped => f.write_str("stopped before the end (deadline)"),
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
        self.decode_until(data, limit, &|| false)
    }

    /// As [`decode`](Self::decode), asking `stop` between chunks of
    /// [`CHUNK`] bytes and giving up with [`CodingError::Stopped`] when it
    /// says so: a bomb inflating to the limit takes seconds of CPU, which a
    /// deadline must be able to cut.
    pub fn decode_until(
        self,
        data: &[u8],
        limit: usize,
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u8>, CodingError> {
        let bounded = |reader: &mut dyn Read| -> Result<Vec<u8>, CodingError> {
            let mut out = Vec::new();
            let mut chunk = vec![0u8; CHUNK];
            loop {
                if stop() {
                    return Err(CodingError::Stopped);
                }
                let n = reader
                    .read(&mut chunk)
                    .map_err(|e| CodingError::Invalid(e.to_string()))?;
                if n == 0 {
                    return Ok(out);
                }
                if out.len() + n > limit {
                    return Err(CodingError::TooLarge(limit));
                }
                out.extend_from_slice(&chunk[..n]);
            }
        };
        match self {
            ContentEncoding::Identity if data.len() > limit => Err(CodingError::TooLarge(limit)),
            ContentEncoding::Identity => Ok(data.to_vec()),
            ContentEncoding::Gzip => bounded(&mut flate2::read::MultiGzDecoder::new(data)),
            ContentEncoding::Deflate => {
                bounded(&mut flate2::read::ZlibDecoder::new(data)).or_else(|e| match e {
                    CodingError::Invalid(_) => {
                        bounded(&mut flate2::read::DeflateDecoder::new(data))
                    }
                    other => Err(other),
                })
            }
            ContentEncoding::Brotli => bounded(&mut brotli::Decompressor::new(data, 4096)),
            ContentEncoding::Zstd => bounded(
                &mut zstd::stream::read::Decoder::new(data)
                    .map_err(|e| CodingError::Invalid(e.to_string()))?,
            ),
        }
    }

    /// Encodes `content` in this coding.
    pub fn encode(self, content: &[u8]) -> Result<Vec<u8>, CodingError> {
        self.encode_until(content, &|| false)
    }

    /// As [`encode`](Self::encode), feeding the encoder [`CHUNK`] bytes at
    /// a time and asking `stop` in between.
    pub fn encode_until(
        self,
        content: &[u8],
        stop: &dyn Fn() -> bool,
    ) -> Result<Vec<u8>, CodingError> {
        let failed = |e: std::io::Error| CodingError::Invalid(e.to_string());
        let feed = |encoder: &mut dyn Write| -> Result<(), CodingError> {
            for chunk in content.chunks(CHUNK) {
                if stop() {
                    return Err(CodingError::Stopped);
                }
                encoder.write_all(chunk).map_err(failed)?;
            }
            Ok(())
        };
        match self {
            ContentEncoding::Identity => Ok(content.to_vec()),
            ContentEncoding::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                feed(&mut encoder)?;
                encoder.finish().map_err(failed)
            }
            ContentEncoding::Deflate => {
                let mut encoder =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                feed(&mut encoder)?;
                encoder.finish().map_err(failed)
            }
            ContentEncoding::Brotli => {
                let mut out = Vec::new();
                {
                    let mut encoder = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    feed(&mut encoder)?;
                }
                Ok(out)
            }
            ContentEncoding::Zstd => {
                let mut encoder =
                    zstd::stream::write::Encoder::new(Vec::new(), 3).map_err(failed)?;
                feed(&mut encoder)?;
                encoder.finish().map_err(failed)
            }
        }
    }
}

/// How much a coder works between two checks of its `stop`: 64 KiB of
/// decoded content take well under a millisecond.
pub const CHUNK: usize = 64 << 10;

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
    fn a_stop_ends_decoding_and_encoding_between_chunks() {
        let bomb = ContentEncoding::Gzip.encode(&vec![0u8; 4 << 20]).unwrap();
        let calls = std::cell::Cell::new(0);
        let stop_after_two = || {
            calls.set(calls.get() + 1);
            calls.get() > 2
        };
        assert_eq!(
            ContentEncoding::Gzip.decode_until(&bomb, 1 << 30, &stop_after_two),
            Err(CodingError::Stopped)
        );
        assert_eq!(calls.get(), 3, "asked once per chunk");
        for coding in [
            ContentEncoding::Gzip,
            ContentEncoding::Brotli,
            ContentEncoding::Zstd,
        ] {
            assert_eq!(
                coding.encode_until(&[1u8; 1 << 20], &|| true),
                Err(CodingError::Stopped),
                "{coding:?}"
            );
        }
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
