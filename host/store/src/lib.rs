//! Saved flows: witm's own flow file format, mitmproxy captures and HAR, and
//! mitmproxy-style filter expressions to pick flows.
//!
//! Layout:
//! - [`tnetstring`]: the typed netstring codec mitmproxy's files are made of,
//!   also the encoding of one record in witm's own files;
//! - [`format`](mod@format): witm's flow files — a versioned header, then self-delimiting,
//!   checksummed records appended one flow at a time;
//! - [`mitmproxy`]: reading mitmproxy capture files (flow format 21 and the
//!   older versions whose migration is simple);
//! - [`har`]: HAR 1.2 import and export;
//! - [`filter`]: `~d example.com & !~c 200` and friends, exactly as
//!   mitmproxy reads and matches them (its regexes are Python's, translated
//!   by the private `pyre` module);
//! - [`source`]: opening a file of any of these kinds, told apart by content.
//!
//! Depends on `witm-flow` only: no sockets, no plugins.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod filter;
pub mod format;
pub mod har;
pub mod mitmproxy;
pub mod mitmproxy_export;
mod pyre;
pub mod source;
mod surrogate_escape;
pub mod tnetstring;

pub use filter::{Filter, FilterError};
pub use format::{AtomicFile, FlowReader, FlowWriter, StoreError};
pub use source::{FileKind, FlowFile};
