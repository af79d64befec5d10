//! Where a flow's server connection goes: straight to the server, or
//! through an upstream proxy (mitmproxy's `upstream:` mode, and a plugin's
//! `set-upstream` for one flow — mitmproxy#4840).
//!
//! Parsed here, in the flow model, so that the plugin runtime can refuse a
//! malformed proxy URL at the plugin's call and the proxy engine gets only
//! valid ones.

use std::fmt;
use std::sync::Arc;

/// Longest proxy URL accepted (a plugin's or the configuration's).
const MAX_URL: usize = 2048;

/// An upstream HTTP proxy: `http[s]://[user:password@]host[:port]`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyUrl {
    /// TLS to the proxy itself (`https://`).
    pub tls: bool,
    /// The proxy's host name or IP (IPv6 without brackets).
    pub host: String,
    /// The proxy's port (default 80 for http, 443 for https, as mitmproxy).
    pub port: u16,
    /// `user:password` for `Proxy-Authorization: Basic`, if given.
    pub credentials: Option<String>,
}

impl ProxyUrl {
    /// Parses `http[s]://[user:password@]host[:port][/]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (tls, host, port, credentials) = parse_url(text)?;
        Ok(Self {
            tls,
            host,
            port,
            credentials,
        })
    }

    /// `host:port` with IPv6 in brackets.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// Shown without the credentials, so logs never carry them.
impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The server a reverse proxy sends every request to:
/// `http[s]://host[:port][/]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerUrl {
    /// "http" or "https".
    pub scheme: &'static str,
    /// The server's host name or IP (IPv6 without brackets).
    pub host: String,
    /// The server's port (default from the scheme).
    pub port: u16,
}

impl ServerUrl {
    /// Parses `http[s]://host[:port][/]` (no credentials, no path).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (tls, host, port, credentials) = parse_url(text)?;
        if credentials.is_some() {
            return Err(format!("{text:?}: a server URL takes no user:password@"));
        }
        Ok(Self {
            scheme: if tls { "https" } else { "http" },
            host,
            port,
        })
    }

    /// `host:port` with IPv6 in brackets.
    pub fn authority(&self) -> String {
        authority(&self.host, self.port)
    }
}

/// Where one flow's server connection goes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Route {
    /// Straight to the server.
    #[default]
    Direct,
    /// Through this upstream proxy (CONNECT for HTTPS and tunnels,
    /// absolute-form requests for plain HTTP).
    Via(Arc<ProxyUrl>),
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::Direct => f.write_str("direct"),
            Route::Via(proxy) => write!(f, "via {proxy}"),
        }
    }
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// (tls, host, port, credentials) of `http[s]://[user:pass@]host[:port][/]`.
fn parse_url(text: &str) -> Result<(bool, String, u16, Option<String>), String> {
    if text.len() > MAX_URL {
        return Err(format!("a URL of {} bytes is too long", text.len()));
    }
    let (tls, rest) = if let Some(rest) = strip_prefix_ignore_case(text, "http://") {
        (false, rest)
    } else if let Some(rest) = strip_prefix_ignore_case(text, "https://") {
        (true, rest)
    } else {
        return Err(format!(
            "{text:?}: expected http://host[:port] or https://host[:port]"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(format!("{text:?}: a path is not allowed here"));
    }
    let (credentials, hostport) = match rest.rsplit_once('@') {
        Some((user, hostport)) if user.contains(':') => (Some(user.to_owned()), hostport),
        Some(_) => return Err(format!("{text:?}: credentials are user:password@")),
        None => (None, rest),
    };
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: unclosed [ in the host"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, parse_port(text, port)?),
            None if after.is_empty() => (host, default_port),
            None => return Err(format!("{text:?}: unexpected {after:?} after the host")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, parse_port(text, port)?),
            None => (hostport, default_port),
        }
    };
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !valid {
        return Err(format!("{text:?}: {host:?} is not a host name or IP"));
    }
    Ok((tls, host.to_ascii_lowercase(), port, credentials))
}

fn parse_port(text: &str, port: &str) -> Result<u16, String> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{text:?}: {port:?} is not a port"))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_with_and_without_credentials_and_ports() {
        let p = ProxyUrl::parse("http://alice:s3:cret@Proxy.example:3128/").unwrap();
        assert_eq!(
            (p.tls, p.host.as_str(), p.port),
            (false, "proxy.example", 3128)
        );
        assert_eq!(p.credentials.as_deref(), Some("alice:s3:cret"));
        assert_eq!(p.to_string(), "http://proxy.example:3128", "no credentials");
        let p = ProxyUrl::parse("https://[::1]").unwrap();
        assert_eq!((p.tls, p.host.as_str(), p.port), (true, "::1", 443));
        assert_eq!(p.authority(), "[::1]:443");
    }

    #[test]
    fn malformed_urls_are_refused_with_a_reason() {
        for bad in [
            "",
            "proxy:3128",
            "socks5://proxy:1080",
            "http://",
            "http://proxy:0",
            "http://proxy:99999",
            "http://proxy:3128/path",
            "http://alice@proxy:3128",
            "http://pro xy:3128",
            "http://[::1",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ProxyUrl::parse(&format!("http://{}", "a".repeat(5000))).is_err());
        assert!(ServerUrl::parse("http://u:p@server").is_err());
    }

    #[test]
    fn server_urls_default_their_port_from_the_scheme() {
        let s = ServerUrl::parse("https://backend.internal").unwrap();
        assert_eq!((s.scheme, s.port), ("https", 443));
        assert_eq!(ServerUrl::parse("HTTP://b:8081").unwrap().port, 8081);
    }
}
