//! What a tunnel carries, told from its first bytes — mitmproxy's "next
//! layer": TLS (a ClientHello), HTTP (a method, or HTTP/2's preface), or
//! anything else (SSH, a database…), which is relayed untouched.
//!
//! Some protocols have the server speak first (SMTP, FTP, MySQL, POP3):
//! their clients wait, silent, after the CONNECT. When the client says
//! nothing for [`CLIENT_FIRST_WAIT`], witm connects to the server and
//! waits for whichever side speaks; a server that does is relayed to, its
//! greeting first. A client that speaks after all goes on as usual (the
//! server connection made meanwhile is dropped).

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::dial::BoxStream;

/// How long a client may stay silent after its tunnel opened before witm
/// asks the server whether it speaks first.
pub(crate) const CLIENT_FIRST_WAIT: Duration = Duration::from_millis(500);

/// What an HTTP/2 client sends first, with or without TLS (RFC 9113 §3.4).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The most the first read takes: enough to tell the protocols apart.
const FIRST_READ: usize = 64;

/// Who spoke first on a tunnel.
pub(crate) enum Opening {
    /// The client, with these bytes (HTTP/2's whole preface, when it is one).
    Client(Vec<u8>),
    /// The server, with this greeting, on this connection.
    Server(BoxStream, Vec<u8>),
    /// Nobody within the time allowed, or the client closed.
    Nothing,
}

/// Waits for the client's first bytes; after [`CLIENT_FIRST_WAIT`] of
/// silence, `dial`s the server and takes whichever speaks first, up to
/// `limit` in all.
pub(crate) async fn open<IO, F, Fut>(io: &mut IO, limit: Duration, dial: F) -> Opening
where
    IO: AsyncRead + Unpin,
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::io::Result<BoxStream>>,
{
    let deadline = Instant::now() + limit;
    let mut first = vec![0u8; FIRST_READ];
    let quiet = CLIENT_FIRST_WAIT.min(limit);
    if let Ok(read) = tokio::time::timeout(quiet, io.read(&mut first)).await {
        return client_spoke(io, first, read).await;
    }
    let server = tokio::time::timeout_at(deadline, dial()).await;
    let Ok(Ok(mut server)) = server else {
        // No server to ask: the client's turn, to the end.
        let read = tokio::time::timeout_at(deadline, io.read(&mut first)).await;
        return match read {
            Ok(read) => client_spoke(io, first, read).await,
            Err(_) => Opening::Nothing,
        };
    };
    let mut greeting = vec![0u8; FIRST_READ];
    // Both reads are cancel-safe: the one that loses has read nothing.
    let spoke = tokio::select! {
        read = io.read(&mut first) => Ok(read),
        said = server.read(&mut greeting) => Err(said),
        () = tokio::time::sleep_until(deadline) => return Opening::Nothing,
    };
    match spoke {
        Ok(read) => client_spoke(io, first, read).await,
        Err(Ok(n)) if n > 0 => {
            greeting.truncate(n);
            Opening::Server(server, greeting)
        }
        // The server closed without a word: the client's turn, to the end.
        Err(_) => match tokio::time::timeout_at(deadline, io.read(&mut first)).await {
            Ok(read) => client_spoke(io, first, read).await,
            Err(_) => Opening::Nothing,
        },
    }
}

/// The client's first bytes within `limit` (a reverse proxy's client,
/// which always speaks first); `None` when it closed or said nothing.
pub(crate) async fn client_first<IO: AsyncRead + Unpin>(
    io: &mut IO,
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut first = vec![0u8; FIRST_READ];
    let read = tokio::time::timeout(limit, io.read(&mut first))
        .await
        .ok()?;
    match client_spoke(io, first, read).await {
        Opening::Client(first) => Some(first),
        _ => None,
    }
}

/// The client's first read, and the rest of HTTP/2's preface if it starts
/// one.
async fn client_spoke<IO: AsyncRead + Unpin>(
    io: &mut IO,
    mut first: Vec<u8>,
    read: std::io::Result<usize>,
) -> Opening {
    match read {
        Ok(n) if n > 0 => first.truncate(n),
        _ => return Opening::Nothing,
    }
    while first.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&first) {
        let mut more = vec![0u8; H2_PREFACE.len() - first.len()];
        match io.read(&mut more).await {
            Ok(0) | Err(_) => break,
            Ok(n) => first.extend_from_slice(&more[..n]),
        }
    }
    Opening::Client(first)
}

/// True when the client's first bytes are HTTP/2's preface (h2c with prior
/// knowledge); the first read may hold its first frames too.
pub(crate) fn is_h2_preface(first: &[u8]) -> bool {
    first.starts_with(H2_PREFACE)
}

/// True when `first` can begin an HTTP/1 request: a method (upper-case
/// letters) followed by a space, or the start of one.
pub(crate) fn looks_like_http(first: &[u8]) -> bool {
    let method = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    method > 0 && (method == first.len() || first[method] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn http_is_told_from_other_protocols() {
        for http in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST",
            b"OPTIONS * HTTP/1.1",
            b"G",
        ] {
            assert!(looks_like_http(http), "{http:?}");
        }
        for other in [
            &b"SSH-2.0-OpenSSH_9.6\r\n"[..],
            b"\x16\x03\x01",
            b"get / HTTP/1.1",
            b"\0\0\0\x08",
        ] {
            assert!(!looks_like_http(other), "{other:?}");
        }
    }

    #[tokio::test]
    async fn an_h2c_preface_read_with_its_first_frame_is_still_h2c() {
        let (mut client, mut server_side) = tokio::io::duplex(1024);
        let mut sent = H2_PREFACE.to_vec();
        sent.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
        client.write_all(&sent).await.unwrap();
        let opened = open(&mut server_side, Duration::from_secs(5), || async {
            Err(std::io::Error::other("not asked"))
        })
        .await;
        let Opening::Client(first) = opened else {
            panic!("the client spoke")
        };
        assert!(is_h2_preface(&first), "{first:?}");
        assert!(!is_h2_preface(b"PRI * HTTP/2.0\r\n"));
    }

    #[tokio::test]
    async fn a_quiet_client_and_a_server_that_greets() {
        let (mut client, mut server_side) = tokio::io::duplex(1024);
        let (greeter, mut greeter_side) = tokio::io::duplex(1024);
        greeter_side.write_all(b"220 smtp ready\r\n").await.unwrap();
        let opened = open(&mut server_side, Duration::from_secs(5), || async {
            Ok(Box::new(greeter) as BoxStream)
        })
        .await;
        let Opening::Server(_, greeting) = opened else {
            panic!("the server spoke first")
        };
        assert_eq!(greeting, b"220 smtp ready\r\n");
        client.write_all(b"late").await.unwrap();
    }

    #[tokio::test]
    async fn a_client_that_speaks_after_the_wait_still_comes_first() {
        let (mut client, mut server_side) = tokio::io::duplex(1024);
        let (silent, _silent_side) = tokio::io::duplex(1024);
        let speaker = tokio::spawn(async move {
            tokio::time::sleep(CLIENT_FIRST_WAIT * 2).await;
            client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
            client
        });
        let opened = open(&mut server_side, Duration::from_secs(5), || async {
            Ok(Box::new(silent) as BoxStream)
        })
        .await;
        let Opening::Client(first) = opened else {
            panic!("the client spoke")
        };
        assert_eq!(first, b"GET / HTTP/1.1\r\n");
        drop(speaker.await);
    }

    #[tokio::test]
    async fn nobody_speaks_within_the_limit() {
        let (_client, mut server_side) = tokio::io::duplex(1024);
        let (silent, _silent_side) = tokio::io::duplex(1024);
        let opened = open(&mut server_side, Duration::from_millis(800), || async {
            Ok(Box::new(silent) as BoxStream)
        })
        .await;
        assert!(matches!(opened, Opening::Nothing));
    }
}
