//! TODO(session): format
