//! witm's resident memory while it holds many idle keep-alive client
//! connections (issue 14's target: 10,000 idle connections in < 300 MB RSS).
//!
//! `cargo bench -p witm --bench idle_connections`. `WITM_IDLE_CONNECTIONS`
//! sets how many connections (default 10,000), `WITM_IDLE_CONCURRENCY` how
//! many are being opened at once (default 100), `WITM_IDLE_SECS` how long
//! they stay idle before the second sample (default 10).
//!
//! Two runs: witm with no plugin, then with the Rust add-header plugin. Each
//! connection is plain TCP to the proxy port carrying one HTTP/1.1 request
//! in absolute form (`GET http://127.0.0.1:PORT/`) to a local origin, read to
//! the end of its response, then left open and idle. witm's VmRSS is read
//! from `/proc/PID/status` before the connections (after one warm-up request
//! on a connection of its own, closed again, so that the plugin's instance
//! and the upstream client are not counted as the connections' cost), once
//! all are open and idle, and after the idle wait; VmHWM (the peak, reset
//! before the connections open) shows the opening phase's high-water mark.
//! KiB per connection is (RSS after the idle wait - RSS before) / N.
//!
//! The measurement fits inside witm's idle limit: witm closes an HTTP/1
//! connection whose next request head has not arrived 30 s after its last
//! response (hyper's header read timeout, `HEADER_READ_TIMEOUT` in
//! host/proxy/src/connection.rs). Everything must therefore be over within
//! 30 s of the first connection's answer; the idle wait is shortened (and
//! the output says so) if opening took so long that the full wait would not
//! fit. Afterwards every connection is checked for a close from witm (a
//! non-blocking peek that must find nothing to read), and 100 of them,
//! spread evenly with the oldest first, each send one more request that must
//! be answered. The bench exits non-zero if a connection failed to open, was
//! closed by witm, or did not answer; it asserts no memory threshold.
//!
//! File descriptors: witm does not raise its own RLIMIT_NOFILE, so it can
//! only hold as many connections as the soft limit it is started with. The
//! bench raises its own soft limit to the hard limit before starting witm,
//! which inherits it; it then reads witm's limit from `/proc/PID/limits` and,
//! should that still be short of N plus a margin, raises it with prlimit(2)
//! (as `prlimit --pid PID --nofile=N:N` would). If the hard limit itself is
//! too low for N, the bench says so and skips.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use witm_test_support::{HELLO, Origin, Witm, env_number, guests};

/// witm closes an HTTP/1 connection this long after its last response when
/// no new request head has come (host/proxy/src/connection.rs).
const WITM_IDLE_LIMIT: Duration = Duration::from_secs(30);
/// What the checks after the idle wait may take, kept clear of that limit.
const CHECK_MARGIN: Duration = Duration::from_secs(4);
/// How many connections get one more request after the idle wait.
const SAMPLE: usize = 100;
/// File descriptors either process needs beyond the connections (the
/// listener, upstream connections, the log pipes, wasmtime's files, …).
const FD_MARGIN: u64 = 512;
/// How long one connection may take to open and be answered.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// One run's figures.
struct Run {
    label: &'static str,
    connections: usize,
    opened: usize,
    open_secs: f64,
    waited_secs: f64,
    before_kib: u64,
    open_kib: u64,
    idle_kib: u64,
    peak_kib: u64,
    fds: u64,
    still_open: usize,
    sampled: usize,
    answered: usize,
}

impl Run {
    fn per_connection_kib(&self) -> f64 {
        self.idle_kib.saturating_sub(self.before_kib) as f64 / self.connections.max(1) as f64
    }

    fn ok(&self) -> bool {
        self.opened == self.connections
            && self.still_open == self.connections
            && self.answered == self.sampled
    }
}

fn main() {
    let connections = env_number("WITM_IDLE_CONNECTIONS", 10_000).max(1) as usize;
    let concurrency = env_number("WITM_IDLE_CONCURRENCY", 100).max(1) as usize;
    let idle = Duration::from_secs(env_number("WITM_IDLE_SECS", 10));
    let needed = connections as u64 + concurrency as u64 + FD_MARGIN;
    let (soft, hard) = raise_own_nofile();
    if soft < needed {
        eprintln!(
            "the open-files limit is {soft} (hard {hard}); {connections} connections need about \
             {needed}: raise the hard limit (ulimit -Hn) or set WITM_IDLE_CONNECTIONS lower; skipping"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let origin = Origin::start_unrecorded();
    let binary = Path::new(env!("CARGO_BIN_EXE_witm"));
    let add_header = guests().rust("add-header").display().to_string();
    println!(
        "{connections} idle HTTP/1.1 keep-alive client connections through witm, each after one \
         request answered; opened {concurrency} at a time; open-files limit {soft}"
    );
    let mut runs = Vec::new();
    for (label, args) in [
        ("no plugin", vec!["-q"]),
        ("add-header (Rust)", vec!["-q", "-s", add_header.as_str()]),
    ] {
        let mut witm = Witm::start(binary, &args).unwrap_or_else(|(s, log)| panic!("{s}: {log}"));
        ensure_nofile(witm.pid(), needed);
        let run = runtime.block_on(measure(
            label,
            &witm,
            origin.address,
            connections,
            concurrency,
            idle,
        ));
        witm.stop();
        runs.push(run);
    }
    report(&runs);
    if !runs.iter().all(Run::ok) {
        eprintln!("some connections failed to open, were closed or did not answer");
        std::process::exit(1);
    }
}

async fn measure(
    label: &'static str,
    witm: &Witm,
    origin: SocketAddr,
    connections: usize,
    concurrency: usize,
    idle: Duration,
) -> Run {
    let proxy = SocketAddr::from(([127, 0, 0, 1], witm.port));
    let request: Arc<[u8]> = format!(
        "GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\nUser-Agent: witm-idle-bench\r\n\
         Accept: */*\r\n\r\n"
    )
    .into_bytes()
    .into();
    // The warm-up: the upstream client, the plugin's instance, the tables
    // the first request fills.
    let mut warm = TcpStream::connect(proxy).await.expect("connect to witm");
    exchange(&mut warm, &request)
        .await
        .expect("the warm-up request is answered");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kib = witm.rss_kib();
    witm.reset_peak_rss();

    println!("{label}: opening {connections} connections …");
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(connections) {
        let next = next.clone();
        let request = request.clone();
        workers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= connections {
                    return mine;
                }
                let opened = tokio::time::timeout(EXCHANGE_TIMEOUT, open(proxy, &request))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 10 s".into()));
                mine.push((i, opened));
            }
        });
    }
    // Held as std streams: out of the runtime's reactor, and a peek on them
    // is a real system call.
    let mut streams: Vec<Option<std::net::TcpStream>> = (0..connections).map(|_| None).collect();
    let mut errors = Vec::new();
    while let Some(done) = workers.join_next().await {
        for (i, opened) in done.expect("worker") {
            match opened.and_then(|s| s.into_std().map_err(|e| e.to_string())) {
                Ok(stream) => streams[i] = Some(stream),
                Err(e) => errors.push(format!("connection {i}: {e}")),
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened = streams.iter().filter(|s| s.is_some()).count();
    for error in errors.iter().take(5) {
        eprintln!("  {error}");
    }
    if errors.len() > 5 {
        eprintln!("  … {} more failures", errors.len() - 5);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let open_kib = witm.rss_kib();

    // The oldest connection was answered after `started`; all checks must be
    // over before witm's idle limit runs out for it.
    let left = (WITM_IDLE_LIMIT.saturating_sub(CHECK_MARGIN)).saturating_sub(started.elapsed());
    let wait = idle.min(left);
    if wait < idle {
        println!(
            "{label}: opening took {open_secs:.1} s; idle wait shortened to {:.1} s to stay \
             within witm's {} s idle limit",
            wait.as_secs_f64(),
            WITM_IDLE_LIMIT.as_secs()
        );
    }
    tokio::time::sleep(wait).await;
    let idle_kib = witm.rss_kib();
    let peak_kib = witm.peak_rss_kib();
    let fds = witm.open_fds();

    // Has witm closed any? A peek that would block means open and quiet.
    let mut still_open = 0;
    for (i, stream) in streams.iter().enumerate() {
        let Some(stream) = stream else { continue };
        match stream.peek(&mut [0u8; 1]) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => still_open += 1,
            Ok(0) => eprintln!("  connection {i}: closed by witm"),
            Ok(_) => eprintln!("  connection {i}: unexpected bytes while idle"),
            Err(e) => eprintln!("  connection {i}: {e}"),
        }
    }
    // One more request on a sample, the oldest first.
    let sampled = SAMPLE.min(connections);
    let mut answered = 0;
    for k in 0..sampled {
        let i = k * connections / sampled;
        let Some(stream) = streams[i].take() else {
            continue;
        };
        let mut stream = TcpStream::from_std(stream).expect("back into the runtime");
        match tokio::time::timeout(Duration::from_secs(5), exchange(&mut stream, &request)).await {
            Ok(Ok(())) => answered += 1,
            Ok(Err(e)) => eprintln!("  connection {i} after the idle wait: {e}"),
            Err(_) => eprintln!("  connection {i} after the idle wait: no answer within 5 s"),
        }
    }
    drop(streams);
    Run {
        label,
        connections,
        opened,
        open_secs,
        waited_secs: wait.as_secs_f64(),
        before_kib,
        open_kib,
        idle_kib,
        peak_kib,
        fds,
        still_open,
        sampled,
        answered,
    }
}

fn report(runs: &[Run]) {
    println!();
    println!(
        "{:<18} {:>6} {:>7} {:>10} {:>10} {:>7} {:>10} {:>10} {:>8} {:>6} {:>11} {:>8}",
        "witm",
        "conns",
        "open s",
        "RSS before",
        "RSS open",
        "idle s",
        "RSS idle",
        "peak",
        "KiB/conn",
        "fds",
        "still open",
        "answered"
    );
    for r in runs {
        println!(
            "{:<18} {:>6} {:>7.1} {:>10} {:>10} {:>7.1} {:>10} {:>10} {:>8.1} {:>6} {:>11} {:>8}",
            r.label,
            r.connections,
            r.open_secs,
            r.before_kib,
            r.open_kib,
            r.waited_secs,
            r.idle_kib,
            r.peak_kib,
            r.per_connection_kib(),
            r.fds,
            format!("{}/{}", r.still_open, r.opened),
            format!("{}/{}", r.answered, r.sampled),
        );
    }
    println!(
        "RSS in KiB (VmRSS): before the connections (after one warm-up request), once all are \
         open, and after `idle s` with all idle; peak = VmHWM since before the connections; \
         KiB/conn = (RSS idle - RSS before) / conns; fds = witm's open file descriptors while \
         idle; still open = connections witm had not closed after the idle wait; answered = one \
         more request on each of a sample, after the idle wait. witm closes an HTTP/1 \
         connection idle for {} s: all of this happens within that.",
        WITM_IDLE_LIMIT.as_secs()
    );
    for r in runs {
        let mb = r.idle_kib as f64 * 1024.0 / 1e6;
        let verdict = if !r.ok() {
            "not measured: connections failed"
        } else if r.connections < 10_000 {
            "not measured: fewer than 10,000 connections"
        } else if mb < 300.0 {
            "met"
        } else {
            "not met"
        };
        println!(
            "{}: {} idle connections in {:.0} MB RSS ({:.0} MiB); issue 14's target, 10,000 in \
             < 300 MB: {verdict}",
            r.label,
            r.connections,
            mb,
            r.idle_kib as f64 / 1024.0,
        );
    }
}

/// Connects to the proxy and has one request answered on the connection.
async fn open(proxy: SocketAddr, request: &[u8]) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    exchange(&mut stream, request).await?;
    Ok(stream)
}

/// Sends `request` and reads its whole response, which must be the origin's
/// 200 with its body and leave the connection open.
async fn exchange(stream: &mut TcpStream, request: &[u8]) -> Result<(), String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        read_more(stream, &mut buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1).unwrap_or("?");
    if status != "200" {
        return Err(format!("status {status}"));
    }
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
        return Err("the response closes the connection".into());
    }
    let body = if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("content-length {length}"))?;
        while buf.len() < head_end + length {
            read_more(stream, &mut buf).await?;
        }
        buf[head_end..head_end + length].to_vec()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = head_end;
        loop {
            let line_end = line_end_at(stream, &mut buf, at).await?;
            let size = String::from_utf8_lossy(&buf[at..line_end]);
            let size = size.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| format!("chunk size {size}"))?;
            at = line_end + 2;
            if size == 0 {
                // Trailers, up to an empty line.
                loop {
                    let end = line_end_at(stream, &mut buf, at).await?;
                    let empty = end == at;
                    at = end + 2;
                    if empty {
                        break;
                    }
                }
                break;
            }
            while buf.len() < at + size + 2 {
                read_more(stream, &mut buf).await?;
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
        body
    } else {
        return Err("a response without a length (it would end with the connection)".into());
    };
    if body != HELLO.as_bytes() {
        return Err(format!("body {:?}", String::from_utf8_lossy(&body)));
    }
    Ok(())
}

/// Where the line starting at `at` ends (its CR), reading more as needed.
async fn line_end_at(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    at: usize,
) -> Result<usize, String> {
    loop {
        if let Some(i) = find(&buf[at..], b"\r\n") {
            return Ok(at + i);
        }
        read_more(stream, buf).await?;
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    match stream.read_buf(buf).await {
        Ok(0) => Err("closed before the response ended".into()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit; returns
/// (soft, hard) after.
fn raise_own_nofile() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            panic!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            } else {
                eprintln!("setrlimit: {}", std::io::Error::last_os_error());
            }
        }
    }
    (limit.rlim_cur, limit.rlim_max)
}

/// Makes sure witm (`pid`) may open `needed` files: it inherits the bench's
/// raised limit, but witm itself does not raise its soft limit, so check.
fn ensure_nofile(pid: u32, needed: u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    // "Max open files            1024                 524288               files"
    let field = |n: usize| {
        limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(n))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (soft, hard) = (field(3), field(4));
    if soft >= needed {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: needed as libc::rlim_t,
        rlim_max: hard.max(needed) as libc::rlim_t,
    };
    // SAFETY: prlimit reads `raised` and writes nothing (no old limit asked).
    let done = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &raised,
            std::ptr::null_mut(),
        )
    };
    if done != 0 {
        panic!(
            "witm's open-files limit is {soft}, {needed} needed, and prlimit failed: {}",
            std::io::Error::last_os_error()
        );
    }
    println!("witm's open-files limit raised from {soft} to {needed} with prlimit(2)");
}
