//! A plugin's log output — `context.log`, stdout and stderr — as log lines
//! under its name, bounded per plugin: lines are cut at `log_line_bytes`,
//! and output beyond `log_bytes_per_s` (bursts of four times as much) is
//! dropped and announced once it may flow again ("dropped N bytes of log
//! output"), so a plugin cannot flood the log or the disk under it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::bindings::types::Level;
use crate::settings::PluginSettings;

/// The log rate of one plugin, shared by its instances and streams: a
/// token bucket of bytes.
pub(crate) struct LogBudget {
    plugin: Arc<str>,
    state: Mutex<Bucket>,
}

struct Bucket {
    per_second: f64,
    burst: f64,
    line_max: usize,
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    /// When drops were last announced: during a flood, once a second.
    announced: Instant,
}

impl LogBudget {
    pub(crate) fn new(plugin: &str, settings: &PluginSettings) -> Self {
        let budget = Self {
            plugin: plugin.into(),
            state: Mutex::new(Bucket {
                per_second: 0.0,
                burst: 0.0,
                line_max: 0,
                tokens: 0.0,
                refilled: Instant::now(),
                dropped: 0,
                // The first drop is announced at once.
                announced: Instant::now()
                    .checked_sub(std::time::Duration::from_secs(1))
                    .unwrap_or_else(Instant::now),
            }),
        };
        budget.configure(settings);
        budget
    }

    /// Applies the rate and line length of `settings` (after a reload).
    pub(crate) fn configure(&self, settings: &PluginSettings) {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        bucket.per_second = settings.log_bytes_per_s as f64;
        bucket.burst = 4.0 * settings.log_bytes_per_s as f64;
        bucket.tokens = bucket.burst;
        bucket.line_max = settings.log_line_bytes.max(64);
    }

    /// The plugin's name, as log lines show it.
    pub(crate) fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Writes one line at `level` (from `stream`: "log", "stdout" or
    /// "stderr"), cut to the line length, if the rate allows.
    pub(crate) fn line(&self, level: Level, stream: &str, text: &[u8]) {
        let plugin = &*self.plugin;
        let Some(Admitted {
            keep,
            dropped_before,
        }) = self.admit(text.len())
        else {
            if let Some(dropped) = self.announce_due() {
                tracing::warn!(plugin = %plugin, "dropped {dropped} bytes of log output (over log_bytes_per_s); dropping more");
            }
            return;
        };
        let (text, cut) = (&text[..keep], text.len() - keep);
        if dropped_before > 0 {
            tracing::warn!(plugin = %plugin, "dropped {dropped_before} bytes of log output (over log_bytes_per_s)");
        }
        let text = String::from_utf8_lossy(text);
        let text = text.trim_end();
        let cut = if cut > 0 {
            format!(" … ({cut} bytes cut, over log_line_bytes)")
        } else {
            String::new()
        };
        // `context.log` lines carry no stream field; stdout/stderr lines do.
        macro_rules! emit {
            ($macro:ident) => {
                match stream {
                    "log" => tracing::$macro!(plugin = %plugin, "{text}{cut}"),
                    _ => tracing::$macro!(plugin = %plugin, stream, "{text}{cut}"),
                }
            };
        }
        match level {
            Level::Debug => emit!(debug),
            Level::Info => emit!(info),
            Level::Warn => emit!(warn),
            Level::Error => emit!(error),
        }
    }

    /// Whether a line of `len` bytes may be written now, and how much of it.
    fn admit(&self, len: usize) -> Option<Admitted> {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * bucket.per_second).min(bucket.burst);
        bucket.refilled = now;
        let keep = len.min(bucket.line_max);
        if (keep as f64) > bucket.tokens {
            bucket.dropped += len as u64;
            return None;
        }
        bucket.tokens -= keep as f64;
        Some(Admitted {
            keep,
            dropped_before: std::mem::take(&mut bucket.dropped),
        })
    }

    /// During a flood: the bytes dropped since the last announcement, once a
    /// second (the announcement itself is not rate-limited, so it is rare).
    fn announce_due(&self) -> Option<u64> {
        let mut bucket = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if bucket.announced.elapsed() < std::time::Duration::from_secs(1) {
            return None;
        }
        bucket.announced = Instant::now();
        Some(std::mem::take(&mut bucket.dropped))
    }

    /// The line length.
    fn line_max(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .line_max
    }
}

/// A line let through: how many of its bytes, and how many bytes were
/// dropped before it (to announce).
struct Admitted {
    keep: usize,
    dropped_before: u64,
}

/// A plugin's stdout or stderr, turned into log lines under its name.
#[derive(Clone)]
pub(crate) struct LogStream {
    budget: Arc<LogBudget>,
    stream: &'static str,
}

impl LogStream {
    pub(crate) fn new(budget: Arc<LogBudget>, stream: &'static str) -> Self {
        Self { budget, stream }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineLogger {
            stream: self.clone(),
            pending: Vec::new(),
        })
    }
}

/// Collects bytes until a newline, then logs the line; a line reaching the
/// line length is logged as it is, so printing without newlines cannot grow
/// host memory.
struct LineLogger {
    stream: LogStream,
    pending: Vec<u8>,
}

impl LineLogger {
    fn emit(&mut self) {
        if !self.pending.is_empty() {
            self.stream
                .budget
                .line(Level::Info, self.stream.stream, &self.pending);
            self.pending.clear();
        }
    }
}

impl tokio::io::AsyncWrite for LineLogger {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let line_max = self.stream.budget.line_max();
        for &byte in buf {
            if byte == b'\n' || self.pending.len() >= line_max {
                self.emit();
            }
            if byte != b'\n' {
                self.pending.push(byte);
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_rate_is_dropped_counted_and_announced() {
        let settings = PluginSettings {
            log_bytes_per_s: 1000,
            log_line_bytes: 100,
            ..PluginSettings::default()
        };
        let budget = LogBudget::new("p", &settings);
        // A burst of 4,000 bytes: 40 lines of 100 (each cut from 500).
        let passed = (0..100).filter(|_| budget.admit(500).is_some()).count();
        assert_eq!(passed, 40);
        std::thread::sleep(std::time::Duration::from_millis(150));
        let next = budget.admit(10).expect("the rate refills");
        assert_eq!(next.keep, 10);
        assert_eq!(
            next.dropped_before,
            60 * 500,
            "what was dropped is told once"
        );
        assert_eq!(budget.admit(10).unwrap().dropped_before, 0);
    }
}
