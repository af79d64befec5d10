//! TODO(session): filter
