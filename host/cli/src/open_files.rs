//! The open-files limit, raised at start as nginx and Envoy do.
//!
//! Every client connection, tunnel and server connection is a file
//! descriptor; the soft limit many systems start processes with (1,024)
//! would make witm refuse clients long before memory or CPU run short.
//! The soft limit goes up to the hard one, which the administrator sets.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit, saying so in
/// the log; a failure is logged and witm goes on with what it has.
pub(crate) fn raise_limit() {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    if current == maximum {
        return;
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: maximum,
            maximum,
        },
    ) {
        Ok(()) => tracing::debug!("open files limit raised from {current:?} to {maximum:?}"),
        Err(e) => tracing::warn!("cannot raise the open files limit from {current:?}: {e}"),
    }
}
