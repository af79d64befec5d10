//! The answers witm makes itself. A [`Failure`] carries where it came from
//! (its [`ErrorKind`]), which becomes the flow's `error` for plugins and,
//! through [`ErrorKind::status`], the client's status — 400 for the
//! client's fault, 502 for the server's, TLS or a plugin's, 504 for a
//! server that did not answer in time, 500 for witm's own.

use http::StatusCode;
use witm_flow::{ErrorKind, FlowError};

use crate::body::{self, ClientBodyError, ProxyBody};

/// Why a flow got no response from its server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The flow's error, as plugins and flow files see it.
    pub(crate) fn to_flow_error(&self) -> FlowError {
        FlowError::new(self.kind, self.message.clone())
    }

    /// The status the client gets ([`ErrorKind::status`] decides it).
    pub(crate) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::BAD_GATEWAY)
    }
}

/// A short text response from the proxy itself.
pub(crate) fn plain_response(
    status: StatusCode,
    text: impl Into<String>,
) -> hyper::Response<ProxyBody> {
    let mut text = text.into();
    text.push('\n');
    let mut response = hyper::Response::new(body::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Where an error from the upstream client (hyper's, with its chain of
/// causes) came from: the client's own body, a timeout, TLS, or else the
/// server.
pub(crate) fn kind_of_upstream(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<ClientBodyError>().is_some() {
            return ErrorKind::Client;
        }
        if e.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return ErrorKind::Timeout;
            }
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return ErrorKind::Tls;
            }
        }
        cause = e.source();
    }
    ErrorKind::Server
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_origin_has_its_status() {
        let statuses: Vec<(ErrorKind, u16)> = ErrorKind::ALL
            .into_iter()
            .map(|k| (k, Failure::new(k, "x").status().as_u16()))
            .collect();
        assert_eq!(
            statuses,
            [
                (ErrorKind::Client, 400),
                (ErrorKind::Server, 502),
                (ErrorKind::Timeout, 504),
                (ErrorKind::Tls, 502),
                (ErrorKind::Plugin, 502),
                (ErrorKind::Internal, 500),
            ]
        );
    }

    #[test]
    fn upstream_errors_are_told_apart_by_their_causes() {
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        assert_eq!(kind_of_upstream(&timeout), ErrorKind::Timeout);
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert_eq!(kind_of_upstream(&tls), ErrorKind::Tls);
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(kind_of_upstream(&refused), ErrorKind::Server);
        let client = ClientBodyError("malformed chunk".into());
        assert_eq!(kind_of_upstream(&client), ErrorKind::Client);
    }
}
