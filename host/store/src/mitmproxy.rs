//! TODO(session): mitmproxy
