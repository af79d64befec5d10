//! Proxy authentication (mitmproxy's `proxyauth`): with an authenticator in
//! the options, every request that does not come through a CONNECT tunnel
//! must carry `Proxy-Authorization: Basic`, and its flow (and those of its
//! tunnel) belong to the tenant the credentials name.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::header::{PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderValue, StatusCode};

use crate::answers::plain_response;
use crate::body::ProxyBody;

/// Checks a client's credentials: gets the user and the password, returns
/// the tenant they belong to, or `None` to refuse them.
pub type Authenticator = Arc<dyn Fn(&str, &str) -> Option<Arc<str>> + Send + Sync>;

/// The realm clients are told to authenticate for.
const CHALLENGE: &str = "Basic realm=\"witm\"";

/// Standard base64, with or without padding (clients differ).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The tenant of a request that came straight to the proxy (not through a
/// tunnel): when the proxy authenticates, the one its credentials name,
/// else the listener's. The credentials are consumed: the header is removed
/// so plugins and saved flows never see the password.
///
/// `Err` is the 407 to answer instead of serving the request.
pub(crate) fn admit(
    authenticate: Option<&Authenticator>,
    listener_tenant: Option<&Arc<str>>,
    headers: &mut HeaderMap,
    client: SocketAddr,
) -> Result<Option<Arc<str>>, Refused> {
    let Some(authenticate) = authenticate else {
        return Ok(listener_tenant.cloned());
    };
    let value = headers.remove(PROXY_AUTHORIZATION);
    let refusal = match value.as_ref().map(|v| basic_credentials(v.as_bytes())) {
        None => {
            tracing::info!(client = %client, "proxy authentication required: no credentials");
            "witm: this proxy requires credentials (Proxy-Authorization: Basic)"
        }
        Some(Err(reason)) => {
            tracing::info!(client = %client, "proxy authentication failed: {reason}");
            "witm: malformed proxy credentials (Proxy-Authorization: Basic)"
        }
        Some(Ok((user, password))) => match authenticate(&user, &password) {
            Some(tenant) => return Ok(Some(tenant)),
            None => {
                tracing::info!(client = %client, "proxy authentication failed: wrong credentials for user {user:?}");
                "witm: wrong proxy credentials"
            }
        },
    };
    Err(Refused(refusal))
}

/// A request refused for its credentials, with the text to tell the client.
#[derive(Debug)]
pub(crate) struct Refused(&'static str);

impl Refused {
    /// The 407 with the challenge: the client may retry with credentials on
    /// the same connection.
    pub(crate) fn response(&self) -> hyper::Response<ProxyBody> {
        let mut response = plain_response(StatusCode::PROXY_AUTHENTICATION_REQUIRED, self.0);
        response
            .headers_mut()
            .insert(PROXY_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
        response
    }
}

/// The user and password of a `Proxy-Authorization` value `Basic <base64 of
/// user:password>` (RFC 7617); the password may contain ':', the user may
/// not. `Err` says what is wrong, without the credentials.
pub(crate) fn basic_credentials(value: &[u8]) -> Result<(String, String), &'static str> {
    let value = std::str::from_utf8(value).map_err(|_| "header is not text")?;
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("not the Basic scheme");
    }
    if token.trim().is_empty() {
        return Err("no credentials after Basic");
    }
    let decoded = BASE64
        .decode(token.trim())
        .map_err(|_| "credentials are not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "credentials are not UTF-8")?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or("credentials have no ':' between user and password")?;
    Ok((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn valid_credentials_are_read() {
        assert_eq!(
            basic_credentials(basic("alice:pw").as_bytes()),
            Ok(("alice".into(), "pw".into()))
        );
        // The scheme is case-insensitive; padding may be left out.
        assert_eq!(
            basic_credentials(b"bAsIc   YWxpY2U6cHc"),
            Ok(("alice".into(), "pw".into()))
        );
        assert_eq!(
            basic_credentials(basic(":").as_bytes()),
            Ok((String::new(), String::new()))
        );
    }

    #[test]
    fn the_password_may_contain_colons() {
        assert_eq!(
            basic_credentials(basic("bob:p:w:").as_bytes()),
            Ok(("bob".into(), "p:w:".into()))
        );
    }

    #[test]
    fn malformed_values_are_refused() {
        assert_eq!(basic_credentials(b""), Err("not the Basic scheme"));
        assert_eq!(
            basic_credentials(b"Basic"),
            Err("no credentials after Basic")
        );
        assert_eq!(
            basic_credentials(b"Basic  "),
            Err("no credentials after Basic")
        );
        assert_eq!(
            basic_credentials(b"Bearer YWxpY2U6cHc="),
            Err("not the Basic scheme")
        );
        assert_eq!(
            basic_credentials(b"Basic not*base64!"),
            Err("credentials are not base64")
        );
        assert_eq!(
            basic_credentials(basic("alice").as_bytes()),
            Err("credentials have no ':' between user and password")
        );
        assert_eq!(
            basic_credentials(b"Basic /w=="),
            Err("credentials are not UTF-8")
        );
        assert_eq!(basic_credentials(b"Basic \xff"), Err("header is not text"));
    }

    /// `admit` on a listener with `authenticate` and `tenant`.
    fn admit_on(
        authenticate: Option<Authenticator>,
        tenant: Option<&str>,
        headers: &mut HeaderMap,
    ) -> Result<Option<Arc<str>>, Refused> {
        let tenant: Option<Arc<str>> = tenant.map(Arc::from);
        admit(authenticate.as_ref(), tenant.as_ref(), headers, CLIENT)
    }

    fn alice_is_a() -> Authenticator {
        Arc::new(|user, password| (user == "alice" && password == "pw").then(|| Arc::from("a")))
    }

    fn headers(authorization: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(PROXY_AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    const CLIENT: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
        std::net::Ipv4Addr::LOCALHOST,
        50000,
    ));

    #[test]
    fn without_an_authenticator_the_listener_tenant_applies() {
        let mut h = headers(Some("Basic !!"));
        let tenant = admit_on(None, Some("t"), &mut h).unwrap();
        assert_eq!(tenant.as_deref(), Some("t"));
        // Not consumed: the proxy does not authenticate.
        assert!(h.contains_key(PROXY_AUTHORIZATION));
        assert_eq!(admit_on(None, None, &mut headers(None)).unwrap(), None);
    }

    #[test]
    fn accepted_credentials_name_the_tenant_and_are_consumed() {
        let mut h = headers(Some(&basic("alice:pw")));
        let tenant = admit_on(Some(alice_is_a()), Some("t"), &mut h).unwrap();
        assert_eq!(tenant.as_deref(), Some("a"));
        assert!(!h.contains_key(PROXY_AUTHORIZATION));
    }

    #[test]
    fn missing_malformed_or_wrong_credentials_get_a_407() {
        for value in [None, Some("Bearer x"), Some(basic("alice:nope").as_str())] {
            let refused = admit_on(Some(alice_is_a()), Some("t"), &mut headers(value))
                .unwrap_err()
                .response();
            assert_eq!(refused.status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
            assert_eq!(
                refused.headers()[PROXY_AUTHENTICATE],
                "Basic realm=\"witm\""
            );
        }
    }
}
