//! What of the `witm` command is also a library: reading its configuration
//! (`config`), so that the fuzzer can read configurations as witm does.
//! Everything else is the binary's (`main.rs`).
#![forbid(unsafe_code)]

pub mod config;
