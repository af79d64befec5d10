//! What a listener does when `accept` fails: out of file descriptors
//! (EMFILE) and the like fail again at once, so the loop pauses before the
//! next try, and the log says so once a second rather than on every try.

use std::time::{Duration, Instant};

/// How long a listener waits after a failed `accept`.
pub const PAUSE: Duration = Duration::from_millis(100);

/// One listener's failed accepts: pauses and rate-limited warnings.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    /// Logs `error` (at most once a second, with how many were not logged)
    /// and waits [`PAUSE`] before the listener accepts again.
    pub async fn pause(&mut self, listener: &str, error: &std::io::Error) {
        let due = self
            .last_logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if due {
            let more = std::mem::take(&mut self.unlogged);
            if more > 0 {
                tracing::warn!("{listener}: accept failed: {error} ({more} more since the last)");
            } else {
                tracing::warn!("{listener}: accept failed: {error}; pausing");
            }
            self.last_logged = Some(Instant::now());
        } else {
            self.unlogged += 1;
        }
        tokio::time::sleep(PAUSE).await;
    }
}
