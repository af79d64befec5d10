//! TODO(session): har
