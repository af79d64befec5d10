//! `--share-server-connections`: the requests of intercepted HTTPS tunnels
//! go over each thread's pool of server connections, shared by every
//! client, HTTP/2 where the server offers it, as Envoy's do. Driven by a
//! Python client over raw sockets, which says exactly which tunnel sends
//! what and when.

use crate::https::{HttpsOrigin, python_prints, witm_ca};

/// The client: `MODE PROXY_PORT ORIGIN_PORT CA_FILE [STREAMS]`; each mode
/// prints one line per answer.
const CLIENT: &str = r#"
import os, socket, ssl, sys, time
mode, proxy_port, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
streams = int(sys.argv[5]) if len(sys.argv) > 5 else 100
context = ssl.create_default_context(cafile=cafile)

def tunnel():
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    s.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return context.wrap_socket(s, server_hostname="localhost")

def read_more(t, data):
    chunk = t.recv(65536)
    assert chunk, data
    return data + chunk

def get(t, path):
    t.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data = read_more(t, data)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = {l.split(b":")[0].strip().lower(): l.split(b":", 1)[1].strip() for l in head.split(b"\r\n")[1:]}
    if b"content-length" in fields:
        while len(body) < int(fields[b"content-length"]):
            body = read_more(t, body)
    else:
        while not body.endswith(b"0\r\n\r\n"):
            body = read_more(t, body)
        chunks, rest = b"", body
        while True:
            size, _, rest = rest.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            chunks, rest = chunks + rest[:int(size, 16)], rest[int(size, 16) + 2:]
        body = chunks
    return head.split(b"\r\n")[0].decode() + " " + body.decode().strip()

if mode == "keep":
    # Four tunnels opened one after another, each kept open, each asked twice.
    tunnels = []
    for i in range(4):
        t = tunnel()
        print(get(t, f"/first-{i}"))
        tunnels.append(t)
    for i, t in enumerate(tunnels):
        print(get(t, f"/second-{i}"))
elif mode == "websocket":
    t = tunnel()
    t.sendall((f"GET /ws HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data = read_more(t, data)
    head, _, rest = data.partition(b"\r\n\r\n")
    print(head.split(b"\r\n")[0].decode())
    mask = os.urandom(4)
    payload = b"over http/1.1"
    t.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    while len(rest) < 2 + len(payload):
        rest = read_more(t, rest)
    print(rest[2:2 + rest[1]].decode())
elif mode == "streams":
    # `https://` URLs asked of the proxy itself (its pool's HTTP/2
    # connection): 120 answered one after another (each stream ends), then
    # as many as the origin takes at once (argv[5]), which it holds for 5 s,
    # then one more, timed.
    def ask(path):
        s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
        s.sendall(f"GET https://localhost:{port}{path} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        return s
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    for i in range(120):
        assert get(s, f"https://localhost:{port}/first").startswith("HTTP/1.1 200"), i
    held = [ask("/sleep/5000") for _ in range(streams)]
    time.sleep(1)
    started = time.monotonic()
    late = ask("/late")
    head = late.recv(12).decode()
    print(head, round(time.monotonic() - started, 1))
elif mode == "stalled":
    # Three clients ask for 32 MiB each and read none of it; then a fourth
    # asks for a small page.
    stalled = []
    for i in range(3):
        t = tunnel()
        t.sendall(f"GET /big/32 HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
        stalled.append(t)
    time.sleep(2)
    t = tunnel()
    t.settimeout(5)
    print(get(t, "/small"))
"#;

/// What the client printed in `mode` through `witm`, to `https`.
fn client(mode: &str, witm: &witm_test_support::Witm, https: &HttpsOrigin) -> Vec<String> {
    client_with(mode, witm, https, &[])
}

/// [`client`] with more arguments.
fn client_with(
    mode: &str,
    witm: &witm_test_support::Witm,
    https: &HttpsOrigin,
    more: &[&str],
) -> Vec<String> {
    let proxy_port = witm.proxy_url().rsplit(':').next().unwrap().to_owned();
    let port = https.origin.address.port().to_string();
    let ca = witm_ca();
    let mut args = vec![mode, &proxy_port, &port, &ca];
    args.extend_from_slice(more);
    let printed = python_prints("python3".as_ref(), CLIENT, &args);
    printed.lines().map(str::to_owned).collect()
}

#[test]
fn tunnels_share_one_http2_server_connection() {
    let https = HttpsOrigin::start("origin-shared");
    let origin = &https.origin;
    // One worker thread, so one pool.
    let witm = https.witm(&[], &["--workers", "1", "--share-server-connections"]);
    let answers = client("keep", &witm, &https);
    assert_eq!(answers.len(), 8, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| a == "HTTP/1.1 200 OK hello from origin"),
        "{answers:?}"
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 8);
    assert!(
        seen.iter().all(|r| r.version == "HTTP/2.0"),
        "HTTP/1.1 clients, one HTTP/2 connection to the server: {seen:?}"
    );
    // The server is named by `:authority` alone: nginx refuses a `host`
    // beside it.
    assert!(
        seen.iter().all(|r| r.header_values("host").is_empty()),
        "{seen:?}"
    );
    // The pool's one connection, and the one each tunnel in turn took to
    // learn the certificate, and left for the next.
    assert_eq!(origin.connections(), 2);
}

#[test]
fn without_sharing_each_tunnel_has_its_own_server_connection() {
    let https = HttpsOrigin::start("origin-unshared");
    let origin = &https.origin;
    let witm = https.witm(&[], &["--workers", "1"]);
    let answers = client("keep", &witm, &https);
    assert_eq!(answers.len(), 8, "{answers:?}");
    assert!(
        answers.iter().all(|a| a.starts_with("HTTP/1.1 200")),
        "{answers:?}"
    );
    assert!(origin.seen().iter().all(|r| r.version == "HTTP/1.1"));
    assert_eq!(origin.connections(), 4);
}

#[test]
fn a_websocket_in_a_shared_tunnel_goes_over_http1() {
    // The origin offers HTTP/2, which cannot carry an upgrade: the pool
    // opens an HTTP/1.1 connection for it.
    let https = HttpsOrigin::start("origin-shared-ws");
    let witm = https.witm(&[], &["--share-server-connections"]);
    let answers = client("websocket", &witm, &https);
    assert_eq!(
        answers,
        ["HTTP/1.1 101 Switching Protocols", "over http/1.1"],
        "{}",
        witm.stderr().join("\n")
    );
}

#[test]
fn a_client_that_reads_nothing_does_not_stop_the_others() {
    // Three clients' 32 MiB responses sit unread on the shared HTTP/2
    // connection; a fourth client's response still comes.
    let https = HttpsOrigin::start("origin-shared-stall");
    let witm = https.witm(&[], &["--workers", "1", "--share-server-connections"]);
    let answers = client("stalled", &witm, &https);
    assert_eq!(answers, ["HTTP/1.1 200 OK hello from origin"]);
}

#[test]
fn a_server_connection_full_of_streams_makes_way_for_another() {
    // The origin takes 100 streams on a connection (as Apache and h2o do),
    // or 10, fewer than the pool's own cap; requests that pass through, and
    // requests that make flows.
    for streams in [100, 10] {
        for plugins in [&[][..], &["tag s"][..]] {
            let https = HttpsOrigin::start_with_streams("origin-streams", streams);
            let origin = &https.origin;
            // One worker thread, so one pool.
            let witm = https.witm(plugins, &["--workers", "1"]);
            let printed = client_with("streams", &witm, &https, &[&streams.to_string()]);
            let (head, seconds) = printed[0].rsplit_once(' ').unwrap();
            assert_eq!(head, "HTTP/1.1 200", "{streams} streams, {plugins:?}");
            // Queued behind the held streams, the request would wait 4 s
            // for one to end.
            let seconds: f64 = seconds.parse().unwrap();
            assert!(seconds < 2.0, "{streams} streams, {plugins:?}: {printed:?}");
            // A second connection for it, and no more: the 120 streams that
            // ended are not counted.
            assert_eq!(origin.connections(), 2, "{streams} streams, {plugins:?}");
        }
    }
}
