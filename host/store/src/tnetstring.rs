//! TODO(session): tnetstring
