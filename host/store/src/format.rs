//! witm's own flow files.
//!
//! ```text
//! witm-flows 3\n                      header: format name and version
//! [u32 LE length][u32 LE CRC-32][record]  one per flow, appended as flows end
//! ```
//!
//! A record is one tnetstring dictionary (see [`flow_to_value`]). Each record
//! is written with a single `write` to an unbuffered file, so a crash loses at
//! most the record being written. The length makes records self-delimiting:
//! a record cut short by the end of the file is a truncated file (the
//! complete records before it are read, and the skipped bytes reported); a
//! complete record whose checksum or contents are wrong is corruption, an
//! error naming its offset. Bodies are stored as on the wire, still
//! content-encoded; a streamed (unheld) body is stored as null.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use witm_flow::{
    Body, CertInfo, ClientConn, ClientTls, DEFAULT_MARKER, ErrorKind, Flow, FlowError, Headers,
    RecordedMessage, ReplaySide, Request, Response, ServerConn, TcpData, WebSocketData,
};

use crate::tnetstring::{self, Value};

/// The first bytes of every witm flow file, before the version.
pub const MAGIC: &[u8] = b"witm-flows ";

/// The version this build writes. Bump it when a record's shape changes and
/// add a step to [`migrate`].
pub const VERSION: u32 = 3;

/// Largest record accepted: a length beyond this is corruption, not a flow.
const MAX_RECORD: u32 = 1 << 30;

/// Why a flow file could not be read or written.
#[derive(Debug)]
pub enum StoreError {
    /// Reading or writing the file failed.
    Io(io::Error),
    /// The file is not a witm flow file, or has a version this build can't read.
    Format(String),
    /// A flow too large for one record (over 1 GiB encoded): it was not
    /// written, and the file stays good for the flows after it.
    TooLarge {
        /// The flow's encoded size.
        bytes: u64,
    },
    /// A complete record is damaged.
    Corrupt {
        /// Byte offset of the record from the start of the file.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Io(e) => e.fmt(f),
            StoreError::Format(m) => f.write_str(m),
            StoreError::TooLarge { bytes } => write!(
                f,
                "a flow of {bytes} bytes is over the {MAX_RECORD} bytes a record may hold; not saved"
            ),
            StoreError::Corrupt { offset, message } => {
                write!(f, "corrupt record at byte {offset}: {message}")
            }
        }
    }
}

impl std::error::Error for StoreError {}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// Appends flows to a witm flow file (or a mitmproxy capture, see
/// [`FlowWriter::for_path`]), one unbuffered write per flow.
pub struct FlowWriter<W: Write> {
    out: W,
    record: Vec<u8>,
    /// [`MAX_RECORD`], what the reader accepts (lowered by tests).
    max_record: u32,
    /// Writes mitmproxy's flow format 21 instead of witm's.
    mitmproxy: bool,
}

/// Whether `path` names a mitmproxy capture: its extension is `.flow`,
/// mitmproxy's own (`mitmdump -w out.flow`).
pub fn is_mitmproxy_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("flow"))
}

/// A record buffer larger than this is not kept for the next flow.
const KEPT_RECORD_BUFFER: usize = 16 << 20;

impl FlowWriter<std::fs::File> {
    /// Creates (or truncates) `path` and writes the header.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        FlowWriter::new(std::fs::File::create(path)?)
    }
}

impl<W: Write> FlowWriter<W> {
    /// Writes the header to `out`.
    pub fn new(mut out: W) -> Result<Self, StoreError> {
        out.write_all(&header())?;
        out.flush()?;
        Ok(Self {
            out,
            record: Vec::new(),
            max_record: MAX_RECORD,
            mitmproxy: false,
        })
    }

    /// A writer of mitmproxy's flow format 21 (no header: a capture is its
    /// flows) when `path` ends in `.flow`, of witm's format otherwise.
    pub fn for_path(out: W, path: &Path) -> Result<Self, StoreError> {
        if !is_mitmproxy_path(path) {
            return Self::new(out);
        }
        Ok(Self {
            out,
            record: Vec::new(),
            max_record: MAX_RECORD,
            mitmproxy: true,
        })
    }

    /// Appends one flow. A flow larger than a record may hold is refused
    /// ([`StoreError::TooLarge`]) and nothing is written, so the reader
    /// still finds every flow after it.
    pub fn write(&mut self, flow: &Flow) -> Result<(), StoreError> {
        if self.record.capacity() > KEPT_RECORD_BUFFER {
            self.record = Vec::new();
        }
        self.record.clear();
        if self.mitmproxy {
            crate::mitmproxy_export::write_flow(flow, &mut self.record);
            self.out.write_all(&self.record)?;
            return Ok(());
        }
        self.record.extend_from_slice(&[0; 8]);
        flow_to_value(flow).encode(&mut self.record);
        let bytes = self.record.len() - 8;
        let len = match u32::try_from(bytes) {
            Ok(len) if len <= self.max_record => len,
            _ => {
                return Err(StoreError::TooLarge {
                    bytes: bytes as u64,
                });
            }
        };
        let crc = crc32fast::hash(&self.record[8..]);
        self.record[..4].copy_from_slice(&len.to_le_bytes());
        self.record[4..8].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.record)?;
        Ok(())
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, StoreError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn header() -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(format!("{VERSION}\n").as_bytes());
    h
}

/// A file written whole or not at all: written into `PATH.tmp-PID` first
/// and renamed over `path` only by [`AtomicFile::commit`], after a sync; a
/// failed run (dropped without commit) leaves any earlier file untouched and
/// no temporary behind. `FlowWriter<AtomicFile>` writes a flow file this way.
pub struct AtomicFile {
    file: Option<io::BufWriter<std::fs::File>>,
    temporary: PathBuf,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing what will become `path`.
    pub fn create(path: &Path) -> Result<Self, StoreError> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        let temporary = path.with_file_name(name);
        let file = std::fs::File::create(&temporary)?;
        Ok(Self {
            file: Some(io::BufWriter::new(file)),
            temporary,
            path: path.to_owned(),
        })
    }

    /// Syncs and renames the file into place.
    pub fn commit(mut self) -> Result<(), StoreError> {
        let Some(file) = self.file.take() else {
            return Err(StoreError::Format("the file was already committed".into()));
        };
        let result = (|| -> Result<(), StoreError> {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&self.temporary, &self.path)?;
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temporary);
        }
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.file {
            Some(file) => file.write(buf),
            None => Err(io::Error::other("the file was already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Never committed: leave nothing behind.
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Reads flows back from a witm flow file, one record at a time.
pub struct FlowReader<R: Read> {
    input: R,
    version: u32,
    offset: u64,
    skipped: u64,
    done: bool,
}

impl<R: Read> FlowReader<R> {
    /// Reads and checks the header. A file from a newer version is refused.
    pub fn new(mut input: R) -> Result<Self, StoreError> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while line.len() < 32 {
            if input.read(&mut byte)? == 0 {
                break;
            }
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        let Some(version) = line.strip_prefix(MAGIC) else {
            return Err(StoreError::Format(
                "not a witm flow file (it does not start with \"witm-flows\")".into(),
            ));
        };
        let version: u32 = std::str::from_utf8(version)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Format("a witm flow file with a damaged header".into()))?;
        if version > VERSION {
            return Err(StoreError::Format(format!(
                "this flow file has format version {version}, newer than this witm \
                 reads ({VERSION}); upgrade witm to read it"
            )));
        }
        if version == 0 {
            return Err(StoreError::Format(
                "a witm flow file with version 0, which never existed".into(),
            ));
        }
        Ok(Self {
            input,
            version,
            offset: line.len() as u64 + 1,
            skipped: 0,
            done: false,
        })
    }

    /// The format version of the file.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Bytes at the end of the file that were not a complete record (a
    /// truncated last record), known once the reader is exhausted.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// Reads the next flow, `Ok(None)` at the end of the file.
    pub fn next_flow(&mut self) -> Result<Option<Flow>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let start = self.offset;
        let mut prefix = [0u8; 8];
        let got = read_up_to(&mut self.input, &mut prefix)?;
        if got < prefix.len() {
            self.done = true;
            self.skipped = got as u64;
            return Ok(None);
        }
        let len = u32::from_le_bytes(prefix[..4].try_into().unwrap_or_default());
        let crc = u32::from_le_bytes(prefix[4..].try_into().unwrap_or_default());
        if len > MAX_RECORD {
            self.done = true;
            return Err(StoreError::Corrupt {
                offset: start,
                message: format!("a record length of {len} bytes"),
            });
        }
        let mut record = Vec::new();
        let got_record = read_exactly(&mut self.input, &mut record, len as usize)?;
        if got_record < len as usize {
            self.done = true;
            self.skipped = (prefix.len() + got_record) as u64;
            return Ok(None);
        }
        self.offset += 8 + u64::from(len);
        let corrupt = |message: String| StoreError::Corrupt {
            offset: start,
            message,
        };
        if crc32fast::hash(&record) != crc {
            self.done = true;
            return Err(corrupt("checksum mismatch".into()));
        }
        let (value, used) =
            tnetstring::decode(&Bytes::from(record)).map_err(|e| corrupt(format!("record {e}")))?;
        if used as u64 != u64::from(len) {
            return Err(corrupt("bytes after the record's value".into()));
        }
        let value = migrate(self.version, value).map_err(corrupt)?;
        flow_from_value(&value).map(Some).map_err(corrupt)
    }
}

impl<R: Read> Iterator for FlowReader<R> {
    type Item = Result<Flow, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_flow().transpose()
    }
}

/// Appends up to `len` bytes to `out` (fewer if the input ends); how many
/// were read. Memory grows with what is read, not with what a (possibly
/// damaged) length claims.
pub(crate) fn read_exactly(
    input: &mut impl Read,
    out: &mut Vec<u8>,
    len: usize,
) -> io::Result<usize> {
    let before = out.len();
    out.reserve(len.min(1 << 20));
    input.take(len as u64).read_to_end(out)?;
    Ok(out.len() - before)
}

/// Reads until `buf` is full or the input ends; how many bytes were read.
pub(crate) fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Brings a record written by format `version` to the current shape, one
/// explicit step per version:
/// - 1 → 2: `marked` (a truth value) became `marker` (mitmproxy's marker
///   name, "" for none), and `is_replay` was added.
fn migrate(version: u32, mut record: Value) -> Result<Value, String> {
    let mut version = version;
    while version < VERSION {
        match version {
            1 => {
                let marked = record.remove("marked").and_then(|m| m.as_bool()) == Some(true);
                record.set(
                    "marker",
                    Value::str(if marked { DEFAULT_MARKER } else { "" }),
                );
                record.set("is_replay", Value::Null);
            }
            // 3 added TCP flows: a record of 2 is an HTTP flow.
            2 => record.set("tcp", Value::Null),
            other => return Err(format!("no migration from format version {other}")),
        }
        version += 1;
    }
    Ok(record)
}

fn headers_value(headers: &Headers) -> Value {
    Value::List(
        headers
            .iter_shared()
            .map(|(n, v)| Value::List(vec![Value::str(n), Value::Bytes(v)]))
            .collect(),
    )
}

/// Headers from a list of `[name, value]` pairs (witm's and mitmproxy's
/// shape); `Err` at the first entry of another shape.
pub(crate) fn headers_from_list(list: &[Value]) -> Result<Headers, ()> {
    let mut headers = Headers::new();
    for pair in list {
        match pair.as_list() {
            Some([name, value]) => match (name.as_string(), value.as_bytes()) {
                (Some(name), Some(value)) => headers.append(&name, Bytes::copy_from_slice(value)),
                _ => return Err(()),
            },
            _ => return Err(()),
        }
    }
    Ok(headers)
}

fn trailers_value(trailers: Option<&Headers>) -> Value {
    trailers.map_or(Value::Null, headers_value)
}

fn body_value(body: &Body) -> Value {
    match body {
        Body::Buffered(b) => Value::Bytes(b.clone()),
        Body::Streamed => Value::Null,
    }
}

fn cert_value(cert: &CertInfo) -> Value {
    Value::dict([
        ("subject", Value::str(&cert.subject)),
        ("issuer", Value::str(&cert.issuer)),
        ("serial", Value::str(&cert.serial)),
        ("not_before", Value::Int(cert.not_before)),
        ("not_after", Value::Int(cert.not_after)),
        (
            "sans",
            Value::List(cert.sans.iter().map(Value::str).collect()),
        ),
        ("der", Value::Bytes(Bytes::copy_from_slice(&cert.der))),
    ])
}

/// One flow as a record: every field of [`Flow`], timestamps in ms.
pub fn flow_to_value(flow: &Flow) -> Value {
    let client = &flow.client;
    let request = &flow.request;
    Value::dict([
        ("id", Value::str(&flow.id)),
        (
            "client",
            Value::dict([
                ("id", Value::str(&client.id)),
                ("address", Value::str(client.address.to_string())),
                ("timestamp_start", Value::Int(client.timestamp_start as i64)),
                (
                    "tls",
                    client.tls.as_ref().map_or(Value::Null, |tls| {
                        Value::dict([
                            ("sni", Value::opt_str(tls.sni.as_deref())),
                            ("alpn", Value::opt_str(tls.alpn.as_deref())),
                        ])
                    }),
                ),
            ]),
        ),
        (
            "request",
            Value::dict([
                ("method", Value::str(&request.method)),
                ("scheme", Value::str(&request.scheme)),
                ("host", Value::str(&request.host)),
                ("port", Value::Int(i64::from(request.port))),
                ("path", Value::str(&request.path)),
                ("http_version", Value::str(&request.http_version)),
                ("headers", headers_value(&request.headers)),
                ("body", body_value(&request.body)),
                ("trailers", trailers_value(request.trailers.as_ref())),
                (
                    "timestamp_start",
                    Value::Int(request.timestamp_start as i64),
                ),
                ("timestamp_end", opt_time_value(request.timestamp_end)),
                ("stream", Value::Bool(request.stream)),
            ]),
        ),
        (
            "response",
            flow.response.as_ref().map_or(Value::Null, |r| {
                Value::dict([
                    ("status", Value::Int(i64::from(r.status))),
                    ("reason", Value::str(&r.reason)),
                    ("http_version", Value::str(&r.http_version)),
                    ("headers", headers_value(&r.headers)),
                    ("body", body_value(&r.body)),
                    ("trailers", trailers_value(r.trailers.as_ref())),
                    ("timestamp_start", Value::Int(r.timestamp_start as i64)),
                    ("timestamp_end", opt_time_value(r.timestamp_end)),
                    ("stream", Value::Bool(r.stream)),
                ])
            }),
        ),
        (
            "error",
            flow.error.as_ref().map_or(Value::Null, |e| {
                Value::dict([
                    ("kind", Value::str(e.kind.name())),
                    ("message", Value::str(&e.message)),
                    ("timestamp", Value::Int(e.timestamp as i64)),
                ])
            }),
        ),
        (
            "server_conn",
            flow.server_conn.as_ref().map_or(Value::Null, |s| {
                Value::dict([
                    ("address", Value::str(&s.address)),
                    ("sni", Value::opt_str(s.sni.as_deref())),
                    ("alpn", Value::opt_str(s.alpn.as_deref())),
                    ("cert", s.cert.as_ref().map_or(Value::Null, cert_value)),
                    (
                        "peername",
                        s.peername
                            .map_or(Value::Null, |p| Value::str(p.to_string())),
                    ),
                    ("timestamp_start", opt_time_value(s.timestamp_start)),
                    ("timestamp_tcp_setup", opt_time_value(s.timestamp_tcp_setup)),
                    ("timestamp_tls_setup", opt_time_value(s.timestamp_tls_setup)),
                ])
            }),
        ),
        (
            "metadata",
            Value::List(
                flow.metadata
                    .iter()
                    .map(|(k, v)| Value::List(vec![Value::str(k), Value::from(v)]))
                    .collect(),
            ),
        ),
        (
            "websocket",
            flow.websocket
                .as_deref()
                .map_or(Value::Null, websocket_value),
        ),
        ("tcp", flow.tcp.as_deref().map_or(Value::Null, tcp_value)),
        ("marker", Value::str(&flow.marker)),
        (
            "is_replay",
            flow.is_replay
                .map_or(Value::Null, |side| Value::str(side.name())),
        ),
        ("comment", Value::str(&flow.comment)),
        ("killed", Value::Bool(flow.killed)),
    ])
}

/// Reads fields of a record, naming the one that is missing or mistyped.
struct Fields<'a> {
    value: &'a Value,
    path: &'static str,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, path: &'static str) -> Result<Self, String> {
        match value {
            Value::Dict(_) => Ok(Self { value, path }),
            _ => Err(format!("{path} is not a dictionary")),
        }
    }
    fn field(&self, key: &str) -> Result<&'a Value, String> {
        self.value
            .get(key)
            .ok_or_else(|| format!("{}.{key} is missing", self.path))
    }
    fn string(&self, key: &str) -> Result<String, String> {
        self.field(key)?
            .as_string()
            .ok_or_else(|| format!("{}.{key} is not text", self.path))
    }
    fn opt_string(&self, key: &str) -> Result<Option<String>, String> {
        match self.value.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string(key).map(Some),
        }
    }
    fn int(&self, key: &str) -> Result<i64, String> {
        self.field(key)?
            .as_int()
            .ok_or_else(|| format!("{}.{key} is not a number", self.path))
    }
    fn uint<T: TryFrom<i64>>(&self, key: &str) -> Result<T, String> {
        T::try_from(self.int(key)?).map_err(|_| format!("{}.{key} is out of range", self.path))
    }
    fn bool(&self, key: &str) -> Result<bool, String> {
        self.field(key)?
            .as_bool()
            .ok_or_else(|| format!("{}.{key} is not a boolean", self.path))
    }
    fn list(&self, key: &str) -> Result<&'a [Value], String> {
        self.field(key)?
            .as_list()
            .ok_or_else(|| format!("{}.{key} is not a list", self.path))
    }
    fn headers(&self) -> Result<Headers, String> {
        headers_from_list(self.list("headers")?)
            .map_err(|()| format!("{}.headers has a bad entry", self.path))
    }
    /// The trailers; files written before trailers were kept have none.
    fn trailers(&self) -> Result<Option<Headers>, String> {
        match self.value.get("trailers") {
            None | Some(Value::Null) => Ok(None),
            Some(_) => headers_from_list(self.list("trailers")?)
                .map(Some)
                .map_err(|()| format!("{}.trailers has a bad entry", self.path)),
        }
    }
    fn body(&self) -> Result<Body, String> {
        match self.field("body")? {
            Value::Null => Ok(Body::Streamed),
            Value::Bytes(b) => Ok(Body::Buffered(b.clone())),
            Value::Str(s) => Ok(Body::Buffered(Bytes::from(s.clone()))),
            _ => Err(format!("{}.body is not bytes", self.path)),
        }
    }
}

/// A WebSocket's messages and close as a record field: each message is
/// `[from_client, is_text, content, timestamp, dropped]`.
/// Recorded messages (a WebSocket's or a TCP flow's) as
/// `[from_client, is_text, content, timestamp, dropped]` lists.
fn messages_value(messages: &[RecordedMessage]) -> Value {
    Value::List(
        messages
            .iter()
            .map(|m| {
                Value::List(vec![
                    Value::Bool(m.from_client),
                    Value::Bool(m.is_text),
                    Value::Bytes(m.content.clone()),
                    Value::Int(m.timestamp as i64),
                    Value::Bool(m.dropped),
                ])
            })
            .collect(),
    )
}

/// The `messages` of `fields` back; the error names `path`.
fn messages_from_value(fields: &Fields, path: &str) -> Result<Vec<RecordedMessage>, String> {
    let bad = || format!("{path}.messages has a bad entry");
    let mut messages = Vec::new();
    for m in fields.list("messages")? {
        let [from_client, is_text, content, timestamp, dropped] = m.as_list().ok_or_else(bad)?
        else {
            return Err(bad());
        };
        messages.push(RecordedMessage {
            from_client: from_client.as_bool().ok_or_else(bad)?,
            is_text: is_text.as_bool().ok_or_else(bad)?,
            content: content
                .as_bytes()
                .map(Bytes::copy_from_slice)
                .ok_or_else(bad)?,
            timestamp: timestamp
                .as_int()
                .and_then(|t| u64::try_from(t).ok())
                .ok_or_else(bad)?,
            dropped: dropped.as_bool().ok_or_else(bad)?,
        });
    }
    Ok(messages)
}

/// An optional time (ms) of `fields`: absent or null is `None`.
fn opt_time(fields: &Fields, key: &str) -> Result<Option<u64>, String> {
    match fields.value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => u64::try_from(fields.int(key)?)
            .map(Some)
            .map_err(|_| format!("{}.{key} is out of range", fields.path)),
    }
}

fn opt_time_value(time: Option<u64>) -> Value {
    time.map_or(Value::Null, |t| Value::Int(t as i64))
}

fn websocket_value(w: &WebSocketData) -> Value {
    Value::dict([
        ("messages", messages_value(&w.messages)),
        ("not_kept", Value::Int(w.not_kept as i64)),
        (
            "closed_by_client",
            w.closed_by_client.map_or(Value::Null, Value::Bool),
        ),
        (
            "close_code",
            w.close_code.map_or(Value::Null, |c| Value::Int(c.into())),
        ),
        ("close_reason", Value::str(&w.close_reason)),
        ("timestamp_end", opt_time_value(w.timestamp_end)),
    ])
}

fn tcp_value(t: &TcpData) -> Value {
    Value::dict([
        ("messages", messages_value(&t.messages)),
        ("not_kept", Value::Int(t.not_kept as i64)),
        ("timestamp_end", opt_time_value(t.timestamp_end)),
    ])
}

/// The `tcp` field back; files without it (formats 1 and 2, and HTTP
/// flows) have none.
fn tcp_from_value(value: Option<&Value>) -> Result<Option<Box<TcpData>>, String> {
    let t = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(t) => Fields::of(t, "tcp")?,
    };
    Ok(Some(Box::new(TcpData {
        messages: messages_from_value(&t, "tcp")?,
        not_kept: t.uint("not_kept")?,
        timestamp_end: opt_time(&t, "timestamp_end")?,
    })))
}

/// The `websocket` field back; files without it (format 1, and flows
/// without a WebSocket) have none.
fn websocket_from_value(value: Option<&Value>) -> Result<Option<Box<WebSocketData>>, String> {
    let w = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(w) => Fields::of(w, "websocket")?,
    };
    Ok(Some(Box::new(WebSocketData {
        messages: messages_from_value(&w, "websocket")?,
        not_kept: w.uint("not_kept")?,
        closed_by_client: match w.value.get("closed_by_client") {
            None | Some(Value::Null) => None,
            Some(_) => Some(w.bool("closed_by_client")?),
        },
        close_code: opt_time(&w, "close_code")?
            .map(|c| u16::try_from(c).map_err(|_| "websocket.close_code is out of range"))
            .transpose()?,
        close_reason: w.string("close_reason")?,
        timestamp_end: opt_time(&w, "timestamp_end")?,
    })))
}

/// A record back into a flow; the error names the bad field.
pub fn flow_from_value(value: &Value) -> Result<Flow, String> {
    let flow = Fields::of(value, "flow")?;
    let client = Fields::of(flow.field("client")?, "client")?;
    let address: SocketAddr = client
        .string("address")?
        .parse()
        .map_err(|_| "client.address is not an address".to_string())?;
    let tls = match client.field("tls")? {
        Value::Null => None,
        tls => {
            let tls = Fields::of(tls, "client.tls")?;
            Some(ClientTls {
                sni: tls.opt_string("sni")?,
                alpn: tls.opt_string("alpn")?,
            })
        }
    };
    let client = ClientConn {
        id: client.string("id")?,
        address,
        timestamp_start: client.uint("timestamp_start")?,
        tls,
    };
    let r = Fields::of(flow.field("request")?, "request")?;
    let request = Request {
        method: r.string("method")?,
        scheme: r.string("scheme")?,
        host: r.string("host")?,
        port: r.uint("port")?,
        path: r.string("path")?,
        http_version: r.string("http_version")?,
        headers: r.headers()?,
        body: r.body()?,
        trailers: r.trailers()?,
        timestamp_start: r.uint("timestamp_start")?,
        timestamp_end: opt_time(&r, "timestamp_end")?,
        stream: r.bool("stream")?,
    };
    let response = match flow.field("response")? {
        Value::Null => None,
        response => {
            let r = Fields::of(response, "response")?;
            Some(Response {
                status: r.uint("status")?,
                reason: r.string("reason")?,
                http_version: r.string("http_version")?,
                headers: r.headers()?,
                body: r.body()?,
                trailers: r.trailers()?,
                timestamp_start: r.uint("timestamp_start")?,
                timestamp_end: opt_time(&r, "timestamp_end")?,
                stream: r.bool("stream")?,
            })
        }
    };
    let error = match flow.field("error")? {
        Value::Null => None,
        error => {
            let e = Fields::of(error, "error")?;
            // Files written before errors had a kind: the server's.
            let kind = match e.opt_string("kind")? {
                None => ErrorKind::Server,
                Some(name) => ErrorKind::from_name(&name)
                    .ok_or_else(|| format!("error: unknown kind {name:?}"))?,
            };
            Some(FlowError {
                kind,
                message: e.string("message")?,
                timestamp: e.uint("timestamp")?,
            })
        }
    };
    let server_conn = match flow.field("server_conn")? {
        Value::Null => None,
        server => {
            let s = Fields::of(server, "server_conn")?;
            let cert = match s.field("cert")? {
                Value::Null => None,
                cert => {
                    let c = Fields::of(cert, "server_conn.cert")?;
                    Some(CertInfo {
                        subject: c.string("subject")?,
                        issuer: c.string("issuer")?,
                        serial: c.string("serial")?,
                        not_before: c.int("not_before")?,
                        not_after: c.int("not_after")?,
                        sans: c
                            .list("sans")?
                            .iter()
                            .filter_map(Value::as_string)
                            .collect(),
                        der: c
                            .field("der")?
                            .as_bytes()
                            .ok_or("server_conn.cert.der is not bytes")?
                            .to_vec(),
                    })
                }
            };
            let peername = match s.value.get("peername") {
                None | Some(Value::Null) => None,
                Some(_) => Some(
                    s.string("peername")?
                        .parse()
                        .map_err(|_| "server_conn.peername is not an address")?,
                ),
            };
            Some(Arc::new(ServerConn {
                address: s.string("address")?,
                sni: s.opt_string("sni")?,
                alpn: s.opt_string("alpn")?,
                cert,
                peername,
                timestamp_start: opt_time(&s, "timestamp_start")?,
                timestamp_tcp_setup: opt_time(&s, "timestamp_tcp_setup")?,
                timestamp_tls_setup: opt_time(&s, "timestamp_tls_setup")?,
            }))
        }
    };
    let mut metadata = Vec::new();
    for pair in flow.list("metadata")? {
        match pair.as_list() {
            Some([k, v]) => match k.as_string() {
                Some(k) => metadata.push((k, v.into())),
                None => return Err("flow.metadata has a bad entry".into()),
            },
            _ => return Err("flow.metadata has a bad entry".into()),
        }
    }
    Ok(Flow {
        id: flow.string("id")?,
        client: Arc::new(client),
        request,
        response,
        error,
        server_conn,
        metadata,
        marker: flow.string("marker")?,
        websocket: websocket_from_value(flow.value.get("websocket"))?,
        tcp: tcp_from_value(flow.value.get("tcp"))?,
        is_replay: match flow.opt_string("is_replay")? {
            None => None,
            Some(side) => {
                Some(ReplaySide::from_name(&side).ok_or_else(|| {
                    format!("flow.is_replay is {side:?}, not request or response")
                })?)
            }
        },
        comment: flow.string("comment")?,
        killed: flow.bool("killed")?,
        ..Flow::default()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use witm_flow::HttpMessage;

    /// A flow with every field set to something other than its default.
    pub(crate) fn full_flow() -> Flow {
        let client = ClientConn {
            id: "client-1".into(),
            address: "[::1]:50000".parse().unwrap(),
            timestamp_start: 1_700_000_000_123,
            tls: Some(ClientTls {
                sni: Some("example.com".into()),
                alpn: Some("h2".into()),
            }),
        };
        let mut request = Request {
            method: "POST".into(),
            scheme: "https".into(),
            host: "example.com".into(),
            port: 8443,
            path: "/p?q=1&q=2".into(),
            http_version: "HTTP/2.0".into(),
            headers: Headers::from_pairs([
                ("X-Dup", "one"),
                ("x-dup", "two"),
                ("Cookie", "a=1; b=2"),
            ]),
            body: Body::Buffered(Bytes::from_static(b"\x00binary\xff")),
            trailers: Some(Headers::from_pairs([("X-Checksum", "abc")])),
            timestamp_start: 1_700_000_000_200,
            timestamp_end: Some(1_700_000_000_210),
            stream: false,
        };
        request
            .headers
            .append("X-Bin", Bytes::from_static(b"\xe9t\xe9"));
        let mut response = Response::make(
            418,
            Headers::from_pairs([("Content-Encoding", "gzip"), ("Set-Cookie", "s=1; Path=/")]),
            Bytes::new(),
        );
        response.set_content(b"short and stout").unwrap();
        response.reason = "I'm a teapot".into();
        response.http_version = "HTTP/2.0".into();
        response.timestamp_start = 1_700_000_000_300;
        response.timestamp_end = Some(1_700_000_000_333);
        response.trailers = Some(Headers::from_pairs([("grpc-status", "0")]));
        Flow {
            id: "flow-1".into(),
            client: Arc::new(client),
            request,
            response: Some(response),
            error: Some(FlowError {
                kind: ErrorKind::Tls,
                message: "connection reset".into(),
                timestamp: 1_700_000_000_400,
            }),
            server_conn: Some(Arc::new(ServerConn {
                address: "example.com:8443".into(),
                sni: Some("example.com".into()),
                alpn: Some("h2".into()),
                cert: Some(CertInfo {
                    subject: "CN=example.com".into(),
                    issuer: "CN=ca".into(),
                    serial: "01:02".into(),
                    not_before: -5,
                    not_after: 1_900_000_000,
                    sans: vec!["example.com".into(), "*.example.com".into()],
                    der: vec![0x30, 0x82, 0x01],
                }),
                peername: Some("[2001:db8::7]:8443".parse().unwrap()),
                timestamp_start: Some(1_700_000_000_100),
                timestamp_tcp_setup: Some(1_700_000_000_150),
                timestamp_tls_setup: Some(1_700_000_000_190),
            })),
            metadata: vec![("tag".into(), "v".into()), ("k2".into(), "ünï".into())],
            marker: ":red_circle:".into(),
            comment: "look at this".into(),
            killed: true,
            is_replay: Some(ReplaySide::Response),
            websocket: Some(Box::new(WebSocketData {
                messages: vec![
                    RecordedMessage {
                        from_client: true,
                        is_text: true,
                        content: Bytes::from_static(b"hello"),
                        timestamp: 1_700_000_000_200,
                        dropped: false,
                    },
                    RecordedMessage {
                        from_client: false,
                        is_text: false,
                        content: Bytes::from_static(&[0, 159, 255]),
                        timestamp: 1_700_000_000_201,
                        dropped: true,
                    },
                ],
                not_kept: 3,
                closed_by_client: Some(true),
                close_code: Some(1000),
                close_reason: "bye".into(),
                timestamp_end: Some(1_700_000_000_300),
            })),
            ..Flow::default()
        }
    }

    fn assert_same(a: &Flow, b: &Flow) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.client.id, b.client.id);
        assert_eq!(a.client.address, b.client.address);
        assert_eq!(a.client.timestamp_start, b.client.timestamp_start);
        assert_eq!(a.client.tls, b.client.tls);
        assert_eq!(a.request, b.request);
        assert_eq!(a.response, b.response);
        assert_eq!(a.error, b.error);
        assert_eq!(a.server_conn, b.server_conn);
        assert_eq!(a.metadata, b.metadata);
        assert_eq!(a.marker, b.marker);
        assert_eq!(a.is_replay, b.is_replay);
        assert_eq!(a.websocket, b.websocket);
        assert_eq!(a.comment, b.comment);
        assert_eq!(a.killed, b.killed);
    }

    #[test]
    fn a_flow_too_large_for_a_record_is_refused_and_the_next_one_is_saved() {
        let mut big = full_flow();
        big.id = "big".into();
        big.request.body = Body::Buffered(Bytes::from(vec![b'x'; 1 << 20]));
        let mut writer = FlowWriter::new(Vec::new()).unwrap();
        writer.max_record = 1 << 20;
        assert!(matches!(
            writer.write(&big),
            Err(StoreError::TooLarge { bytes }) if bytes > 1 << 20
        ));
        writer.write(&full_flow()).unwrap();
        let bytes = writer.finish().unwrap();
        let mut reader = FlowReader::new(&bytes[..]).unwrap();
        let back: Vec<Flow> = reader.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(back.len(), 1);
        assert_same(&back[0], &full_flow());
    }

    fn write_all(flows: &[Flow]) -> Vec<u8> {
        let mut w = FlowWriter::new(Vec::new()).unwrap();
        for f in flows {
            w.write(f).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn every_field_round_trips() {
        let mut streamed = full_flow();
        streamed.id = "flow-2".into();
        streamed.request.body = Body::Streamed;
        streamed.request.stream = true;
        streamed.response = None;
        streamed.error = None;
        streamed.server_conn = None;
        streamed.metadata.clear();
        streamed.marker.clear();
        streamed.is_replay = None;
        streamed.killed = false;
        streamed.client = Arc::new(ClientConn {
            tls: None,
            ..(*streamed.client).clone()
        });
        let flows = [full_flow(), streamed];
        let bytes = write_all(&flows);
        assert!(bytes.starts_with(b"witm-flows 3\n"));
        let mut reader = FlowReader::new(&bytes[..]).unwrap();
        let back: Vec<Flow> = reader.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!(back.len(), 2);
        assert_same(&back[0], &flows[0]);
        assert_same(&back[1], &flows[1]);
        assert_eq!(reader.skipped_bytes(), 0);
        assert_eq!(
            back[0].response.as_ref().unwrap().content().unwrap(),
            b"short and stout"
        );
    }

    #[test]
    fn a_truncated_file_gives_every_complete_flow_and_the_skipped_bytes() {
        let flows: Vec<Flow> = (0..5)
            .map(|i| {
                let mut f = full_flow();
                f.id = format!("flow-{i}");
                f
            })
            .collect();
        let bytes = write_all(&flows);
        let header = header().len();
        let record = (bytes.len() - header) / 5;
        for cut in [
            header,
            header + 3,
            header + record,
            bytes.len() - 1,
            bytes.len(),
        ] {
            let mut reader = FlowReader::new(&bytes[..cut]).unwrap();
            let back: Vec<Flow> = reader.by_ref().collect::<Result<_, _>>().unwrap();
            assert_eq!(back.len(), (cut - header) / record, "cut at {cut}");
            assert_eq!(
                reader.skipped_bytes() as usize,
                (cut - header) % record,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_its_offset() {
        let flows = [full_flow(), full_flow()];
        let mut bytes = write_all(&flows);
        let header = header().len();
        let record = (bytes.len() - header) / 2;
        bytes[header + record + 40] ^= 0x55;
        let mut reader = FlowReader::new(&bytes[..]).unwrap();
        assert!(reader.next().unwrap().is_ok());
        let err = reader.next().unwrap().unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { offset, .. } if *offset == (header + record) as u64),
            "{err}"
        );
        assert!(err.to_string().contains("checksum"), "{err}");
        assert!(reader.next().is_none());
    }

    /// A record as format 1 wrote it: `marked` a truth value, no
    /// `is_replay`.
    fn version_1_file(flow: &Flow, marked: bool) -> Vec<u8> {
        let mut record = flow_to_value(flow);
        record.remove("marker");
        record.remove("is_replay");
        record.remove("tcp");
        record.set("marked", Value::Bool(marked));
        let body = record.to_vec();
        let mut bytes = b"witm-flows 1\n".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn version_1_files_still_read_with_their_mark_as_the_default_marker() {
        for (marked, marker) in [(true, DEFAULT_MARKER), (false, "")] {
            let bytes = version_1_file(&full_flow(), marked);
            let mut reader = FlowReader::new(&bytes[..]).unwrap();
            assert_eq!(reader.version(), 1);
            let flow = reader.next().unwrap().unwrap();
            assert_eq!(flow.marker, marker);
            assert_eq!(flow.is_replay, None);
            assert_eq!(flow.comment, "look at this");
        }
    }

    #[test]
    fn a_tcp_flow_keeps_its_messages_and_end() {
        let mut flow = Flow::tcp(full_flow().client, "db.example", 5432);
        let tcp = flow.tcp.as_mut().unwrap();
        for (i, from_client) in [false, true, false].into_iter().enumerate() {
            tcp.record(RecordedMessage {
                from_client,
                is_text: false,
                content: Bytes::from(vec![i as u8, 0xff]),
                timestamp: 1_700_000_000_000 + i as u64,
                dropped: false,
            });
        }
        tcp.not_kept = 2;
        tcp.timestamp_end = Some(1_700_000_000_100);
        let bytes = write_all(std::slice::from_ref(&flow));
        let back = FlowReader::new(&bytes[..])
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(back.is_tcp());
        assert_eq!(back.tcp, flow.tcp);
        assert_eq!(back.request.url(), "tcp://db.example:5432");
        assert_eq!(back.server_conn.unwrap().address, "db.example:5432");
    }

    #[test]
    fn newer_versions_and_other_files_are_refused_clearly() {
        let err = FlowReader::new(&b"witm-flows 4\n"[..]).err().unwrap();
        assert!(err.to_string().contains("newer"), "{err}");
        let err = FlowReader::new(&b"{\"log\": {}}"[..]).err().unwrap();
        assert!(err.to_string().contains("not a witm flow file"), "{err}");
    }

    #[test]
    fn atomic_file_appears_only_on_commit() {
        let dir = std::env::temp_dir().join(format!("witm-store-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.witm");
        let mut file = FlowWriter::new(AtomicFile::create(&path).unwrap()).unwrap();
        file.write(&full_flow()).unwrap();
        assert!(!path.exists());
        drop(file);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "temporary removed"
        );
        let mut file = FlowWriter::new(AtomicFile::create(&path).unwrap()).unwrap();
        file.write(&full_flow()).unwrap();
        file.finish().unwrap().commit().unwrap();
        let back: Vec<_> = FlowReader::new(std::fs::File::open(&path).unwrap())
            .unwrap()
            .collect();
        assert_eq!(back.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
