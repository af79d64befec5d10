//! The onboarding page, like mitmproxy's mitm.it: requests through the
//! proxy to the onboarding host (`witm.it` unless
//! [`ProxyOptions::onboarding_host`](crate::ProxyOptions) says otherwise, on
//! any port, plain or inside an intercepted tunnel) are answered by witm
//! itself with a page to download the CA certificate and short install
//! instructions:
//!
//! - `/`: the page (HTML, no external resources);
//! - `/cert/pem`, `/cert/cer`, `/cert/p12`: the certificate as PEM, DER and
//!   a certificate-only PKCS#12, as downloads;
//! - anything else 404; methods other than GET and HEAD 405.
//!
//! Only the certificate is served: [`witm_tls::CertificateAuthority`] hands
//! out nothing else. These requests are answered before any plugin event and
//! never reach a server (mitmproxy's onboarding addon answers first too): a
//! plugin that rewrote or blocked them could keep a device from ever getting
//! the CA, and the page is witm's, not traffic to inspect.

use http::{Method, StatusCode, header};

use crate::answers::plain_response;
use crate::body::{self, ProxyBody};
use crate::tls::TlsOptions;

/// The onboarding host by default, as mitmproxy's is mitm.it.
pub const DEFAULT_HOST: &str = "witm.it";

/// Whether a request to `host` is for the onboarding page served as
/// `onboarding_host` (names compare without case and a final dot).
pub(crate) fn is_for(onboarding_host: Option<&str>, host: &str) -> bool {
    let bare = |h: &str| h.trim_end_matches('.').to_ascii_lowercase();
    onboarding_host.is_some_and(|o| !o.is_empty() && bare(o) == bare(host))
}

/// The answer to `method path` on the onboarding host `host`; `tls` is the
/// proxy's interception, whose CA is offered (none when it is off).
pub(crate) fn answer(
    method: &Method,
    path: &str,
    host: &str,
    tls: Option<&TlsOptions>,
) -> hyper::Response<ProxyBody> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain_response(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{host} serves GET and HEAD only"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, http::HeaderValue::from_static("GET, HEAD"));
        return no_store(response);
    }
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let response = match (path, tls) {
        ("/", _) => page(host, tls.is_some()),
        ("/cert/pem" | "/cert/cer" | "/cert/p12", None) => plain_response(
            StatusCode::NOT_FOUND,
            "HTTPS interception is off: witm has no CA certificate to offer",
        ),
        ("/cert/pem", Some(tls)) => download(
            tls.ca.cert_pem().into_bytes(),
            "application/x-x509-ca-cert",
            "witm-ca-cert.pem",
        ),
        ("/cert/cer", Some(tls)) => download(
            tls.ca.cert_der().to_vec(),
            "application/x-x509-ca-cert",
            "witm-ca-cert.cer",
        ),
        ("/cert/p12", Some(tls)) => match tls.ca.cert_pkcs12() {
            Ok(p12) => download(p12, "application/x-pkcs12", "witm-ca-cert.p12"),
            Err(e) => {
                tracing::error!("onboarding: {e}");
                plain_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        },
        _ => plain_response(
            StatusCode::NOT_FOUND,
            format!("{host} has /, /cert/pem, /cert/cer and /cert/p12"),
        ),
    };
    no_store(response)
}

/// The page and its certificates are this proxy's: never cached, so that
/// a device sees the CA of the proxy it goes through now.
fn no_store(mut response: hyper::Response<ProxyBody>) -> hyper::Response<ProxyBody> {
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        http::HeaderValue::from_static("nosniff"),
    );
    response
}

fn download(
    bytes: Vec<u8>,
    content_type: &'static str,
    filename: &'static str,
) -> hyper::Response<ProxyBody> {
    let mut response = hyper::Response::new(body::full(bytes));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    let disposition = format!("attachment; filename=\"{filename}\"");
    if let Ok(value) = http::HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

fn page(host: &str, intercepting: bool) -> hyper::Response<ProxyBody> {
    let host = escape(host);
    let body = match intercepting {
        true => PAGE.replace("{host}", &host),
        false => OFF_PAGE.replace("{host}", &host),
    };
    let html = format!("{HEAD}{body}</body>\n</html>\n");
    let mut response = hyper::Response::new(body::full(html));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Nothing from elsewhere: no scripts, no fetches, the inline style only.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        http::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

/// The host name as HTML text (it is configuration, but still text).
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

const HEAD: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>witm: install the CA certificate</title>
<style>
body { font: 16px/1.45 system-ui, sans-serif; max-width: 46em; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .3em; }
.downloads { display: flex; flex-wrap: wrap; gap: .6em; margin: 1em 0; }
.downloads a { display: inline-block; padding: .55em 1em; border-radius: .4em; background: #1f5fa8; color: #fff; text-decoration: none; font-weight: 600; }
.downloads a small { font-weight: 400; opacity: .85; }
code { background: #f1f1f1; padding: 0 .2em; border-radius: .2em; font-size: .92em; }
ol, ul { margin: .2em 0; padding-left: 1.4em; }
.note { border-left: 4px solid #c77c00; background: #fff7e6; padding: .5em .8em; }
</style>
</head>
<body>
"#;

const PAGE: &str = r#"<h1>Install witm's CA certificate</h1>
<p>witm reads HTTPS traffic by presenting certificates it signs with its own
certificate authority. Trust that CA on this device, then HTTPS through the
proxy works without warnings.</p>
<div class="downloads">
<a id="pem" href="/cert/pem" download="witm-ca-cert.pem">PEM <small>Linux, macOS, iOS, Firefox</small></a>
<a id="cer" href="/cert/cer" download="witm-ca-cert.cer">DER (.cer) <small>Windows, Android</small></a>
<a id="p12" href="/cert/p12" download="witm-ca-cert.p12">PKCS#12 (.p12) <small>Windows, macOS, iOS</small></a>
</div>
<p class="note">Only the certificate is served here; its key never leaves
witm's folder (<code>--confdir</code>, <code>~/.witm</code> by default). Whoever holds that key can read the
traffic of every device that trusts this CA: remove it when you are done.</p>

<h2 id="windows">Windows</h2>
<ol><li>Open <code>witm-ca-cert.p12</code> (empty password), choose <em>Current User</em>.</li>
<li><em>Place all certificates in the following store</em>: <em>Trusted Root Certification Authorities</em>.</li>
<li>Or, as administrator: <code>certutil -addstore root witm-ca-cert.cer</code></li></ol>

<h2 id="macos">macOS</h2>
<ol><li>Open <code>witm-ca-cert.pem</code>; it goes into Keychain Access (login keychain).</li>
<li>Double-click <em>witm CA</em>, <em>Trust</em>, <em>When using this certificate: Always Trust</em>.</li>
<li>Or: <code>sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain witm-ca-cert.pem</code></li></ol>

<h2 id="linux">Linux</h2>
<ul><li>Debian, Ubuntu: <code>sudo cp witm-ca-cert.pem /usr/local/share/ca-certificates/witm.crt &amp;&amp; sudo update-ca-certificates</code></li>
<li>Fedora, RHEL: <code>sudo cp witm-ca-cert.pem /etc/pki/ca-trust/source/anchors/ &amp;&amp; sudo update-ca-trust</code></li>
<li>curl: <code>curl --cacert witm-ca-cert.pem …</code>; Python: <code>SSL_CERT_FILE=witm-ca-cert.pem</code> or <code>REQUESTS_CA_BUNDLE=witm-ca-cert.pem</code></li></ul>

<h2 id="ios">iOS, iPadOS</h2>
<ol><li>In Safari open <code>http://{host}/cert/pem</code> and allow the profile download.</li>
<li><em>Settings, General, VPN &amp; Device Management</em>: install the <em>witm CA</em> profile.</li>
<li><em>Settings, General, About, Certificate Trust Settings</em>: turn on full trust for <em>witm CA</em>.</li></ol>

<h2 id="android">Android</h2>
<ol><li>Download <code>witm-ca-cert.cer</code>.</li>
<li><em>Settings, Security, Encryption &amp; credentials, Install a certificate, CA certificate</em> (menus vary).</li>
<li>Since Android 7 apps trust user CAs only if they opt in; Chrome does.</li></ol>

<h2 id="firefox">Firefox</h2>
<ol><li><em>Settings, Privacy &amp; Security, Certificates, View Certificates, Authorities, Import</em>: <code>witm-ca-cert.pem</code>.</li>
<li>Tick <em>Trust this CA to identify websites</em>. (Firefox keeps its own list of CAs, apart from the system's.)</li></ol>

<h2 id="chrome">Chrome, Chromium</h2>
<ul><li>Windows, macOS, ChromeOS, Android: the system's store (above).</li>
<li>Linux: <em>Settings, Privacy and security, Security, Manage certificates, Authorities, Import</em> <code>witm-ca-cert.pem</code>, trust it for websites; or <code>certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n witm -i witm-ca-cert.pem</code></li></ul>
"#;

const OFF_PAGE: &str = r#"<h1>witm: HTTPS interception is off</h1>
<p id="off">This proxy does not intercept HTTPS, so it has no CA certificate to
install: HTTPS goes through it untouched, and there is nothing to trust.</p>
<p>This page is <code>http://{host}/</code>, answered by witm itself.</p>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_matches_without_case_or_final_dot_and_can_be_off() {
        assert!(is_for(Some("witm.it"), "WITM.it"));
        assert!(is_for(Some("witm.it"), "witm.it."));
        assert!(!is_for(Some("witm.it"), "www.witm.it"));
        assert!(!is_for(Some("witm.it"), "witm.it.example"));
        assert!(!is_for(None, "witm.it"));
        assert!(!is_for(Some(""), ""));
    }

    #[tokio::test]
    async fn without_interception_the_page_says_so_and_offers_no_file() {
        use http_body_util::BodyExt;
        let page = answer(&Method::GET, "/", "witm.it", None);
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.into_body().collect().await.unwrap().to_bytes();
        let html = String::from_utf8_lossy(&html);
        assert!(html.contains("HTTPS interception is off"), "{html}");
        assert!(!html.contains("/cert/"), "{html}");
        let cert = answer(&Method::GET, "/cert/pem", "witm.it", None);
        assert_eq!(cert.status(), StatusCode::NOT_FOUND);
        let post = answer(&Method::POST, "/", "witm.it", None);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
    }

    #[test]
    fn the_host_is_escaped_in_the_page() {
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }
}
