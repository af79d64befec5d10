//! Opening a flow file of any kind witm reads, told apart by its content.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use witm_flow::Flow;

use crate::format::{FlowReader, MAGIC, StoreError, read_up_to};
use crate::har;
use crate::mitmproxy::{self, MitmproxyReader};

/// What kind of file a flow file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// witm's own format.
    Witm,
    /// A mitmproxy capture (`mitmdump -w`).
    Mitmproxy,
    /// A HAR 1.2 document.
    Har,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Witm => "witm flow file",
            FileKind::Mitmproxy => "mitmproxy capture",
            FileKind::Har => "HAR file",
        })
    }
}

/// Tells the kind of a file from its first bytes.
pub fn detect(prefix: &[u8]) -> Option<FileKind> {
    if prefix.starts_with(MAGIC) {
        Some(FileKind::Witm)
    } else if mitmproxy::looks_like_mitmproxy(prefix) {
        Some(FileKind::Mitmproxy)
    } else if har::looks_like_har(prefix) {
        Some(FileKind::Har)
    } else {
        None
    }
}

enum Inner {
    Witm(FlowReader<BufReader<File>>),
    Mitmproxy(MitmproxyReader<BufReader<File>>),
    Har(std::vec::IntoIter<Flow>),
}

/// The flows of a file, read one at a time (HAR: parsed whole).
pub struct FlowFile {
    kind: FileKind,
    inner: Inner,
}

impl FlowFile {
    /// Opens `path` and tells its kind; an unknown or empty file is an error
    /// saying which kinds witm reads.
    pub fn open(path: &Path) -> Result<FlowFile, StoreError> {
        let mut file = File::open(path)?;
        let mut prefix = vec![0u8; 512];
        let n = read_up_to(&mut file, &mut prefix)?;
        prefix.truncate(n);
        let kind = detect(&prefix).ok_or_else(|| {
            StoreError::Format(format!(
                "{}: not a flow file witm reads (witm flows, a mitmproxy capture or HAR){}",
                path.display(),
                if n == 0 { "; the file is empty" } else { "" }
            ))
        })?;
        let file = File::open(path)?;
        let inner = match kind {
            FileKind::Witm => Inner::Witm(FlowReader::new(BufReader::new(file))?),
            FileKind::Mitmproxy => Inner::Mitmproxy(MitmproxyReader::new(BufReader::new(file))),
            FileKind::Har => {
                let bytes = std::fs::read(path)?;
                let flows = har::import(&bytes).map_err(|e| StoreError::Format(e.to_string()))?;
                Inner::Har(flows.into_iter())
            }
        };
        Ok(FlowFile { kind, inner })
    }

    /// The kind of file.
    pub fn kind(&self) -> FileKind {
        self.kind
    }

    /// Bytes at the end of a truncated file that were skipped (known once
    /// every flow has been read).
    pub fn skipped_bytes(&self) -> u64 {
        match &self.inner {
            Inner::Witm(r) => r.skipped_bytes(),
            Inner::Mitmproxy(r) => r.skipped_bytes(),
            Inner::Har(_) => 0,
        }
    }

    /// Flows of kinds witm does not model (mitmproxy's TCP/UDP/DNS flows).
    pub fn skipped_flows(&self) -> u64 {
        match &self.inner {
            Inner::Mitmproxy(r) => r.skipped_flows(),
            _ => 0,
        }
    }

    /// What was skipped, for people, or `None` when nothing was.
    pub fn skipped_summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.skipped_bytes() > 0 {
            parts.push(format!(
                "the file is truncated: {} bytes of an incomplete last flow skipped",
                self.skipped_bytes()
            ));
        }
        if self.skipped_flows() > 0 {
            parts.push(format!(
                "{} non-HTTP flows (TCP/UDP/DNS) skipped",
                self.skipped_flows()
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

impl Iterator for FlowFile {
    type Item = Result<Flow, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Witm(r) => r.next(),
            Inner::Mitmproxy(r) => r.next(),
            Inner::Har(flows) => flows.next().map(Ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every prefix of a real file and a few thousand damaged copies: each
    /// is read to its end or to an error, never a panic or a hang.
    #[test]
    fn damaged_files_of_every_kind_are_errors_not_panics() {
        let root = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/mitmproxy/"
        );
        let capture = std::fs::read(format!("{root}mitm-capture.flow")).unwrap();
        let har = std::fs::read(format!("{root}mitm-capture.har")).unwrap();
        let mut witm = crate::format::FlowWriter::new(Vec::new()).unwrap();
        for flow in crate::mitmproxy::MitmproxyReader::new(&capture[..]) {
            witm.write(&flow.unwrap()).unwrap();
        }
        let witm = witm.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("witm-store-damaged-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for original in [&capture, &har, &witm] {
            for round in 0..300 {
                let mut bytes = original.clone();
                if round % 3 == 0 {
                    bytes.truncate(next() as usize % original.len());
                } else {
                    for _ in 0..1 + round % 5 {
                        let at = next() as usize % bytes.len();
                        bytes[at] = next() as u8;
                    }
                }
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(file) = FlowFile::open(&path) {
                    for flow in file {
                        if flow.is_err() {
                            break;
                        }
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
