//! `http-send`: a plugin's own HTTP requests, under the same policy as
//! replays ([`crate::policy`]) and bounded in time, bytes and count.
//!
//! The URL's host must match `allowed_hosts`; every address its name
//! resolves to is checked (loopback, private ranges and witm's own ports
//! need an entry naming them), and the proxy connects to the checked
//! address itself, so a second DNS answer cannot rebind the call into a
//! private range. Redirects are followed (at most [`MAX_REDIRECTS`]) and
//! each hop is checked the same way.
//!
//! The call is an async host function: while it waits, the instance's
//! store is parked and no tokio worker is held, so every other flow — this
//! plugin's other instances, other plugins, other tenants — goes on. A
//! single-instance plugin's own later events wait for the instance like
//! any event (up to `queue_timeout`, then its failure policy applies).

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use witm_flow::headers::validate;
use witm_flow::{HttpSender, OutboundRequest, OutboundResponse};

use crate::bindings::types::{HostError, IncomingResponse, OutgoingRequest};
use crate::plugin::PluginStats;
use crate::policy::{InFlight, check_address, check_pattern, resolve};
use crate::settings::PluginSettings;

/// Redirects followed for one call.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Headers the host sets itself: the plugin's values are dropped, so that
/// the request on the wire is always framed by its body and addressed to
/// the checked host.
const HOST_SET: [&str; 5] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
];

/// A plugin's outbound calls: the way out, witm's own ports and the calls
/// in flight. Shared by the plugin's instances and versions.
pub(crate) struct OutboundGate {
    sender: Arc<OnceLock<HttpSender>>,
    own_ports: Arc<[u16]>,
    in_flight: InFlight,
    stats: Arc<PluginStats>,
}

/// A parsed, checked target: where one hop goes.
struct Target {
    scheme: String,
    host: String,
    port: u16,
    path: String,
}

impl OutboundGate {
    pub(crate) fn new(
        sender: Arc<OnceLock<HttpSender>>,
        own_ports: Arc<[u16]>,
        stats: Arc<PluginStats>,
    ) -> Self {
        Self {
            sender,
            own_ports,
            in_flight: InFlight::default(),
            stats,
        }
    }

    /// Sends `request` for a plugin whose event has made `calls_so_far`
    /// calls and must end by `deadline`; counts the outcome.
    pub(crate) async fn send(
        &self,
        request: OutgoingRequest,
        settings: &PluginSettings,
        deadline: Instant,
        calls_so_far: u32,
    ) -> Result<IncomingResponse, HostError> {
        let started = Instant::now();
        let outcome = self
            .send_checked(request, settings, deadline, calls_so_far)
            .await;
        let stats = &self.stats;
        stats.outbound_calls.fetch_add(1, Ordering::Relaxed);
        stats
            .outbound_wait_ns
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let counter = match &outcome {
            Ok(response) => {
                stats
                    .outbound_response_bytes
                    .fetch_add(response.body.len() as u64, Ordering::Relaxed);
                None
            }
            Err(HostError::TimedOut(_)) => Some(&stats.outbound_timeouts),
            Err(HostError::Unreachable(_)) => Some(&stats.outbound_failures),
            Err(_) => Some(&stats.outbound_refused),
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    async fn send_checked(
        &self,
        request: OutgoingRequest,
        settings: &PluginSettings,
        deadline: Instant,
        calls_so_far: u32,
    ) -> Result<IncomingResponse, HostError> {
        if calls_so_far >= settings.max_outbound_per_event {
            return Err(HostError::OverBudget(format!(
                "http-send: {} calls per event at most (max_outbound_per_event)",
                settings.max_outbound_per_event
            )));
        }
        let Some(sender) = self.sender.get().cloned() else {
            return Err(HostError::Invalid(
                "http-send: no network here (witm replay runs plugins offline)".into(),
            ));
        };
        let _slot = self.in_flight.take(
            settings.max_outbound_in_flight,
            "http-send calls",
            "max_outbound_in_flight",
        )?;
        let (limit, bound) = match request.timeout_ms {
            0 => (settings.outbound_timeout, "outbound_timeout_ms"),
            ms => (
                Duration::from_millis(ms.into()).min(settings.outbound_timeout),
                "the call's timeout-ms",
            ),
        };
        let now = Instant::now();
        let (until, bound) = if now + limit <= deadline {
            (now + limit, bound)
        } else {
            (deadline, "the event's deadline")
        };
        let url = request.url.clone();
        let call = self.follow(sender, request, settings, until);
        match tokio::time::timeout_at(until.into(), call).await {
            Ok(outcome) => outcome,
            Err(_) => Err(HostError::TimedOut(format!(
                "http-send {url}: no answer within {} ms ({bound})",
                until.saturating_duration_since(now).as_millis()
            ))),
        }
    }

    /// Sends each hop, checking it first, until a response that is not a
    /// redirect.
    async fn follow(
        &self,
        sender: HttpSender,
        request: OutgoingRequest,
        settings: &PluginSettings,
        until: Instant,
    ) -> Result<IncomingResponse, HostError> {
        let method = http::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
            HostError::Invalid(format!("http-send: bad method {:?}", request.method))
        })?;
        let mut headers = checked_headers(request.headers)?;
        let mut method = method.as_str().to_owned();
        let mut body = Bytes::from(request.body);
        let mut url = request.url;
        for hop in 0..=MAX_REDIRECTS {
            let target = parse_url(&url)?;
            let allowed = &settings.allowed_hosts;
            check_pattern(
                "http-send",
                allowed,
                &target.scheme,
                &target.host,
                target.port,
            )?;
            let addresses = resolve(&target.host, target.port, until).await?;
            for address in &addresses {
                check_address(
                    allowed,
                    &self.own_ports,
                    &target.host,
                    target.port,
                    *address,
                )?;
            }
            let outbound = OutboundRequest {
                method: method.clone(),
                scheme: target.scheme.clone(),
                host: target.host.clone(),
                port: target.port,
                path: target.path.clone(),
                headers: headers.clone(),
                body: body.clone(),
                connect_to: (addresses[0], target.port).into(),
                max_response_bytes: settings.max_outbound_response_bytes,
            };
            let response = sender(outbound)
                .await
                .map_err(|e| HostError::Unreachable(format!("http-send {url}: {e}")))?;
            let Some(next) = redirect_location(&response, &url) else {
                return Ok(incoming(response));
            };
            if hop == MAX_REDIRECTS {
                break;
            }
            // As browsers and curl do: 303, and 301/302 after a POST,
            // become a GET without a body; credentials stay with their host.
            if response.status == 303 || (matches!(response.status, 301 | 302) && method == "POST")
            {
                method = "GET".into();
                body = Bytes::new();
            }
            let next_target = parse_url(&next)?;
            if next_target.host != target.host || next_target.port != target.port {
                headers.retain(|(name, _)| {
                    !name.eq_ignore_ascii_case("authorization")
                        && !name.eq_ignore_ascii_case("cookie")
                });
            }
            url = next;
        }
        Err(HostError::Unreachable(format!(
            "http-send: more than {MAX_REDIRECTS} redirects, the last to {url}"
        )))
    }
}

/// The plugin's headers, each a valid name and value, without the ones the
/// host sets itself.
fn checked_headers(headers: Vec<(String, String)>) -> Result<Vec<(String, String)>, HostError> {
    let mut kept = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if validate(&name, value.as_bytes()).is_err() {
            return Err(HostError::Invalid(format!(
                "http-send: header {name:?} is not a valid name and value"
            )));
        }
        if !HOST_SET.iter().any(|h| name.eq_ignore_ascii_case(h)) {
            kept.push((name, value));
        }
    }
    Ok(kept)
}

/// An absolute `http://` or `https://` URL, without credentials.
fn parse_url(url: &str) -> Result<Target, HostError> {
    let bad = |why: &str| HostError::Invalid(format!("http-send: {url:?}: {why}"));
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    let scheme = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => "http",
        Some(s) if s.eq_ignore_ascii_case("https") => "https",
        _ => return Err(bad("the scheme must be http or https")),
    };
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("credentials in the URL: send an Authorization header"));
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Target {
        scheme: scheme.to_owned(),
        host: host.to_ascii_lowercase(),
        port: uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 }),
        path: uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned()),
    })
}

/// Where a redirect response points, as an absolute URL (resolved against
/// `base`); `None` when it is not a redirect.
fn redirect_location(response: &OutboundResponse, base: &str) -> Option<String> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))?
        .1
        .trim();
    if location.contains("://") {
        return Some(location.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    if let Some(network_path) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{network_path}"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = &rest[authority.len()..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    Some(format!("{scheme}://{authority}{dir}/{location}"))
}

fn incoming(response: OutboundResponse) -> IncomingResponse {
    IncomingResponse {
        status: response.status,
        headers: response.headers,
        body: response.body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redirect(status: u16, location: &str) -> OutboundResponse {
        OutboundResponse {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Bytes::new(),
        }
    }

    #[test]
    fn redirects_resolve_against_the_url_they_answer() {
        let base = "http://a.test:8000/dir/page?q=1";
        let at = |status, location| redirect_location(&redirect(status, location), base);
        assert_eq!(
            at(302, "https://b.test/x").as_deref(),
            Some("https://b.test/x")
        );
        assert_eq!(at(301, "//c.test/y").as_deref(), Some("http://c.test/y"));
        assert_eq!(at(307, "/z").as_deref(), Some("http://a.test:8000/z"));
        assert_eq!(
            at(308, "other").as_deref(),
            Some("http://a.test:8000/dir/other")
        );
        assert_eq!(at(200, "/z"), None);
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        let target = parse_url("HTTPS://Api.Test/v1?x=2").unwrap();
        assert_eq!(
            (
                target.scheme.as_str(),
                target.host.as_str(),
                target.port,
                target.path.as_str()
            ),
            ("https", "api.test", 443, "/v1?x=2")
        );
        assert_eq!(parse_url("http://[::1]:81").unwrap().path, "/");
        for bad in [
            "/relative",
            "ftp://a.test/",
            "http://u:p@a.test/",
            "not a url",
        ] {
            assert!(
                matches!(parse_url(bad), Err(HostError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn headers_framing_and_addressing_are_the_hosts() {
        let kept = checked_headers(vec![
            ("Authorization".into(), "Bearer x".into()),
            ("Host".into(), "elsewhere.test".into()),
            ("Content-Length".into(), "0".into()),
            ("Transfer-Encoding".into(), "chunked".into()),
        ])
        .unwrap();
        assert_eq!(kept, vec![("Authorization".into(), "Bearer x".into())]);
        assert!(checked_headers(vec![("bad name".into(), "v".into())]).is_err());
        assert!(checked_headers(vec![("x".into(), "a\r\nb".into())]).is_err());
    }
}
