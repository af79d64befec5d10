//! What a listener is (mitmproxy's `--mode`): a regular forward proxy, a
//! reverse proxy in front of one server, a forward proxy that chains
//! through an upstream proxy, or a SOCKS5 proxy.
//!
//! Written as mitmproxy writes it, `MODE[:DATA][@PORT]`: `regular`,
//! `reverse:https://backend:8443`, `upstream:http://user:pw@proxy:3128`,
//! `socks5@1080`. Only a port may follow the last `@` (so an upstream's
//! `user:pw@10.0.0.1:3128` is never read as a listen address).

use std::fmt;

use witm_flow::{ProxyUrl, Route, ServerUrl};

/// How a listener takes its clients' requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A forward proxy: absolute-form requests and CONNECT.
    #[default]
    Regular,
    /// Every request goes to this server; clients speak to witm as to the
    /// server (plain HTTP, or HTTPS with a certificate from witm's CA).
    Reverse(ServerUrl),
    /// A forward proxy whose server connections go through this proxy.
    Upstream(std::sync::Arc<ProxyUrl>),
    /// A SOCKS5 proxy (RFC 1928; username/password, RFC 1929, when the
    /// listener has credentials).
    Socks5,
}

impl Mode {
    /// Parses `MODE[:DATA][@PORT]` into the mode and its port, if any.
    pub fn parse_with_port(text: &str) -> Result<(Mode, Option<u16>), String> {
        let (spec, port) = match text.rsplit_once('@') {
            Some((spec, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                let port = port
                    .parse::<u16>()
                    .map_err(|_| format!("{text:?}: {port} is not a port"))?;
                (spec, Some(port))
            }
            _ => (text, None),
        };
        Ok((Self::parse(spec)?, port))
    }

    /// Parses `regular`, `reverse:URL`, `upstream:URL` or `socks5`.
    pub fn parse(spec: &str) -> Result<Mode, String> {
        let (name, data) = match spec.split_once(':') {
            Some((name, data)) => (name, Some(data)),
            None => (spec, None),
        };
        match (name, data) {
            ("regular", None) => Ok(Mode::Regular),
            ("socks5", None) => Ok(Mode::Socks5),
            ("reverse", Some(url)) => ServerUrl::parse(url)
                .map(Mode::Reverse)
                .map_err(|e| format!("reverse mode: {e}")),
            ("upstream", Some(url)) => ProxyUrl::parse(url)
                .map(|p| Mode::Upstream(p.into()))
                .map_err(|e| format!("upstream mode: {e}")),
            ("reverse" | "upstream", None) => {
                Err(format!("{name} mode needs a URL: {name}:http://host:port"))
            }
            _ => Err(format!(
                "{spec:?} is not a mode: regular, reverse:URL, upstream:URL or socks5"
            )),
        }
    }

    /// Where this listener's flows go unless a plugin chooses.
    pub fn default_route(&self) -> Route {
        match self {
            Mode::Upstream(proxy) => Route::Via(proxy.clone()),
            _ => Route::Direct,
        }
    }
}

/// As parsed, credentials left out.
impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Regular => f.write_str("regular"),
            Mode::Reverse(server) => {
                write!(f, "reverse:{}://{}", server.scheme, server.authority())
            }
            Mode::Upstream(proxy) => write!(f, "upstream:{proxy}"),
            Mode::Socks5 => f.write_str("socks5"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_as_mitmproxy_writes_them() {
        assert_eq!(
            Mode::parse_with_port("regular").unwrap(),
            (Mode::Regular, None)
        );
        assert_eq!(
            Mode::parse_with_port("socks5@1080").unwrap(),
            (Mode::Socks5, Some(1080))
        );
        let (mode, port) = Mode::parse_with_port("reverse:https://backend:8443@9000").unwrap();
        assert_eq!(mode.to_string(), "reverse:https://backend:8443");
        assert_eq!(port, Some(9000));
        // The last @ of an upstream's credentials is not a listen port.
        let (mode, port) = Mode::parse_with_port("upstream:http://u:p@10.0.0.1:3128").unwrap();
        assert_eq!(port, None);
        let Mode::Upstream(proxy) = &mode else {
            panic!("{mode:?}")
        };
        assert_eq!(proxy.credentials.as_deref(), Some("u:p"));
        assert_eq!(mode.to_string(), "upstream:http://10.0.0.1:3128");
    }

    #[test]
    fn unknown_or_incomplete_modes_are_refused() {
        for bad in [
            "transparent",
            "reverse",
            "upstream:",
            "regular:x",
            "socks5@99999",
            "reverse:ftp://x",
        ] {
            assert!(Mode::parse_with_port(bad).is_err(), "{bad:?} accepted");
        }
    }
}
