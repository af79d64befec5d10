//! Where a request goes: the target a flow names (scheme, host, port,
//! path), and the URI and authority the request goes out with.
//!
//! A proxied request names its URL whole (absolute-form, or HTTP/2's
//! `:scheme` and `:authority`). When that URI is already the URL the
//! target's parts make, and the flow has not changed them, the request goes
//! out with it: writing the URL again and parsing it cost ~1,300
//! instructions of every request (`bench/instructions.sh`).

use std::borrow::Cow;

use http::uri::Scheme;
use http::{StatusCode, Uri};
use witm_flow::Request;
use witm_flow::message::{Digits, authority_of, default_port, url_of};

use crate::upstream::Tunnel;

/// The parts of a URL, as [`url_of`] writes them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UrlParts<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) host: &'a str,
    pub(crate) port: u16,
    pub(crate) path: &'a str,
}

impl<'a> UrlParts<'a> {
    /// Those of a flow's request, as it is now.
    pub(crate) fn of(request: &'a Request) -> Self {
        UrlParts {
            scheme: &request.scheme,
            host: &request.host,
            port: request.port,
            path: &request.path,
        }
    }
}

/// The absolute URI and the authority ("host" or "host:port") a request to
/// `parts` goes out with: `received`'s own, shared, while it is still the
/// URL of `parts`; written and parsed otherwise. The error names the URL.
pub(crate) fn addressed<'a>(
    received: Option<&'a Uri>,
    parts: UrlParts<'_>,
) -> Result<(Uri, Cow<'a, str>), String> {
    if let Some(uri) = received.filter(|uri| is_url_of(uri, parts)) {
        return Ok((uri.clone(), shared_authority(uri)));
    }
    let url = url_of(parts.scheme, parts.host, parts.port, parts.path);
    match url.parse() {
        Ok(uri) => Ok((
            uri,
            Cow::Owned(authority_of(parts.scheme, parts.host, parts.port)),
        )),
        Err(e) => Err(format!("invalid URL {url}: {e}")),
    }
}

/// The authority of a URI [`is_url_of`] passed (which has one).
fn shared_authority(uri: &Uri) -> Cow<'_, str> {
    Cow::Borrowed(uri.authority().map_or("", |a| a.as_str()))
}

/// The absolute URI of an origin-form request (`GET /path`) in `tunnel`:
/// the tunnel's scheme and authority (made once per tunnel) with the
/// request's path, all shared, none written or parsed again.
fn in_tunnel(tunnel: &Tunnel, uri: &Uri) -> Option<Uri> {
    let authority = tunnel
        .authority
        .get_or_init(|| {
            authority_of(tunnel.scheme, &tunnel.host, tunnel.port)
                .parse()
                .ok()
        })
        .clone()?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(match tunnel.scheme {
        "https" => Scheme::HTTPS,
        _ => Scheme::HTTP,
    });
    parts.authority = Some(authority);
    // Origin-form only: `*` (OPTIONS) is written and refused as before.
    let path = uri
        .path_and_query()
        .filter(|p| p.as_str().starts_with('/'))?;
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).ok()
}

/// True when `uri` reads, byte for byte, as the URL [`url_of`] writes for
/// `parts`: the same scheme, host (in brackets when IPv6) and path, and
/// the port written only when it is not the scheme's default, in plain
/// digits. No user information.
pub(crate) fn is_url_of(uri: &Uri, parts: UrlParts<'_>) -> bool {
    let (Some(scheme), Some(authority), Some(path)) =
        (uri.scheme_str(), uri.authority(), uri.path_and_query())
    else {
        return false;
    };
    if scheme != parts.scheme || path.as_str() != parts.path {
        return false;
    }
    let authority = authority.as_str();
    // A short name: a loop, not a call to memchr.
    let after_host = if parts.host.bytes().any(|b| b == b':') {
        authority
            .strip_prefix('[')
            .and_then(|a| a.strip_prefix(parts.host))
            .and_then(|a| a.strip_prefix(']'))
    } else {
        authority.strip_prefix(parts.host)
    };
    let Some(after_host) = after_host else {
        return false;
    };
    if parts.port == default_port(parts.scheme) {
        return after_host.is_empty();
    }
    after_host.as_bytes().strip_prefix(b":") == Some(Digits::new(parts.port.into()).as_bytes())
}

/// Where a request goes, as its flow names it.
pub(crate) struct Target {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
    /// The request's own URI when it is exactly the URL these parts make
    /// ([`is_url_of`]): the request goes out with it, not with a URL
    /// written and parsed again.
    pub(crate) received: Option<Uri>,
}

impl Target {
    /// The full URL ([`Request::url`]).
    pub(crate) fn url(&self) -> String {
        url_of(&self.scheme, &self.host, self.port, &self.path)
    }

    /// From an absolute URI (absolute-form, or HTTP/2's :scheme and
    /// :authority), or from the tunnel for origin-form requests in one.
    ///
    /// Inside a tunnel a request may only go where the tunnel goes: one
    /// naming another scheme, host or port gets 421 Misdirected Request, so
    /// a tunnel cannot carry requests past `http-connect` decisions and the
    /// hosts witm would refuse (a plugin may still retarget a request).
    pub(crate) fn of(uri: &Uri, tunnel: Option<&Tunnel>) -> Result<Target, (StatusCode, String)> {
        let mut target = match tunnel.filter(|t| t.reverse) {
            // A reverse proxy sends everything to its server.
            Some(tunnel) => Target {
                scheme: tunnel.scheme.to_owned(),
                host: tunnel.host.clone(),
                port: tunnel.port,
                path: uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .filter(|p| p.starts_with('/'))
                    .unwrap_or_else(|| "/".into()),
                received: None,
            },
            None => Self::named(uri, tunnel).map_err(|e| (StatusCode::BAD_REQUEST, e))?,
        };
        // The URI the request came with, absolute (in a tunnel, with the
        // tunnel's authority), kept when it is the URL of the target.
        let absolute = match tunnel {
            Some(tunnel) if tunnel.reverse || uri.scheme().is_none() => in_tunnel(tunnel, uri),
            _ => Some(uri.clone()),
        };
        target.received = absolute.filter(|u| is_url_of(u, target.url_parts()));
        match tunnel {
            Some(tunnel)
                if target.scheme != tunnel.scheme
                    || target.port != tunnel.port
                    || !target.host.eq_ignore_ascii_case(&tunnel.host) =>
            {
                Err((
                    StatusCode::MISDIRECTED_REQUEST,
                    format!(
                        "this tunnel goes to {}://{}:{}, not to {}://{}:{}",
                        tunnel.scheme,
                        tunnel.host,
                        tunnel.port,
                        target.scheme,
                        target.host,
                        target.port
                    ),
                ))
            }
            _ => Ok(target),
        }
    }

    fn named(uri: &Uri, tunnel: Option<&Tunnel>) -> Result<Target, String> {
        let path = || {
            uri.path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into())
        };
        let scheme = match (uri.scheme_str(), tunnel) {
            (Some(s @ ("http" | "https")), _) => s,
            (Some(other), _) => return Err(format!("unsupported scheme {other:?}")),
            (None, Some(tunnel)) => {
                return Ok(Target {
                    scheme: tunnel.scheme.to_owned(),
                    host: tunnel.host.clone(),
                    port: tunnel.port,
                    path: path(),
                    received: None,
                });
            }
            (None, None) => {
                return Err("witm is a proxy: send absolute-form requests, e.g. curl -x http://127.0.0.1:8080 http://example.com/".into());
            }
        };
        let host = uri.host().ok_or("the request URL has no host")?;
        Ok(Target {
            scheme: scheme.to_owned(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or_else(|| default_port(scheme)),
            path: path(),
            received: None,
        })
    }

    /// The parts its URL is made of.
    pub(crate) fn url_parts(&self) -> UrlParts<'_> {
        UrlParts {
            scheme: &self.scheme,
            host: &self.host,
            port: self.port,
            path: &self.path,
        }
    }

    /// The URI and authority the request goes out with ([`addressed`]):
    /// the received URI as it is, its check made by [`Target::of`] (no
    /// plugin changes a target that makes no flow).
    pub(crate) fn addressed(&self) -> Result<(Uri, Cow<'_, str>), String> {
        match &self.received {
            Some(uri) => Ok((uri.clone(), shared_authority(uri))),
            None => addressed(None, self.url_parts()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the request would go out with if its URL were written and
    /// parsed again, as before the received URI was reused.
    fn written(parts: UrlParts<'_>) -> (String, String) {
        let url = url_of(parts.scheme, parts.host, parts.port, parts.path);
        (
            url.parse::<Uri>().unwrap().to_string(),
            authority_of(parts.scheme, parts.host, parts.port),
        )
    }

    #[test]
    fn the_received_uri_goes_out_only_where_it_reads_as_the_written_url() {
        // (URI, whether it is reused as it came)
        let cases = [
            ("http://127.0.0.1:8080/small", true),
            ("http://example.com/", true),
            ("https://example.com/a?b=c&d", true),
            ("http://Example.COM/x", true),
            ("http://[::1]:8080/", true),
            ("https://[2001:db8::1]/p", true),
            ("http://a.example:1/", true),
            // Written otherwise: each is rebuilt.
            ("http://example.com:80/", false),
            ("https://example.com:443/", false),
            ("http://example.com:080/", false),
            ("http://example.com:08080/", false),
            ("http://example.com:+80/", false),
            ("http://user:pw@example.com/", false),
            // http parses no path as "/", and writes it so.
            ("http://example.com", true),
            ("http://example.com:/", false),
        ];
        for (text, reused) in cases {
            let uri: Uri = text.parse().unwrap();
            let target = Target::of(&uri, None).unwrap();
            assert_eq!(target.received.is_some(), reused, "{text}");
            let (absolute, authority) = target.addressed().unwrap();
            let (url, written_authority) = written(target.url_parts());
            assert_eq!(absolute.to_string(), url, "{text}");
            assert_eq!(authority, written_authority, "{text}");
        }
    }

    fn tunnel(scheme: &'static str, host: &str, port: u16, reverse: bool) -> Tunnel {
        Tunnel {
            scheme,
            host: host.into(),
            port,
            link: None,
            link_error: None,
            tenant: None,
            route: Default::default(),
            reverse,
            authority: Default::default(),
        }
    }

    #[test]
    fn in_a_tunnel_an_origin_form_request_goes_out_with_the_tunnels_authority() {
        // (tunnel, request URI, whether a URI is made without writing one)
        let cases = [
            (tunnel("https", "localhost", 8443, false), "/small", true),
            (tunnel("https", "example.com", 443, false), "/a?b", true),
            (tunnel("http", "example.com", 80, false), "/", true),
            (tunnel("https", "::1", 8443, false), "/x", true),
            (tunnel("https", "example.com", 443, true), "/r", true),
            (
                tunnel("https", "example.com", 443, false),
                "https://example.com/abs",
                true,
            ),
            (tunnel("https", "example.com", 443, false), "*", false),
            (tunnel("https", "example.com", 443, true), "*", false),
        ];
        for (tunnel, text, made) in cases {
            let uri: Uri = text.parse().unwrap();
            let target = Target::of(&uri, Some(&tunnel)).unwrap();
            assert_eq!(target.received.is_some(), made, "{text}");
            let (absolute, authority) = target.addressed().unwrap();
            let (url, written_authority) = written(target.url_parts());
            assert_eq!(absolute.to_string(), url, "{text}");
            assert_eq!(authority, written_authority, "{text}");
        }
    }

    #[test]
    fn a_target_changed_since_goes_out_as_written() {
        let uri: Uri = "http://example.com:8080/a?q".parse().unwrap();
        let target = Target::of(&uri, None).unwrap();
        assert!(target.received.is_some());
        let changes: [(&str, &str, u16, &str); 5] = [
            ("https", "example.com", 8080, "/a?q"),
            ("http", "example.org", 8080, "/a?q"),
            ("http", "EXAMPLE.com", 8080, "/a?q"),
            ("http", "example.com", 8081, "/a?q"),
            ("http", "example.com", 8080, "/a"),
        ];
        for (scheme, host, port, path) in changes {
            let parts = UrlParts {
                scheme,
                host,
                port,
                path,
            };
            let (absolute, authority) = addressed(target.received.as_ref(), parts).unwrap();
            let (url, written_authority) = written(parts);
            assert_eq!(absolute.to_string(), url);
            assert_eq!(authority, written_authority);
        }
        let refused = UrlParts {
            scheme: "http",
            host: "a b",
            port: 80,
            path: "/",
        };
        let error = addressed(target.received.as_ref(), refused).unwrap_err();
        assert!(error.starts_with("invalid URL http://a b/"), "{error}");
    }
}
