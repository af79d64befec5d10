//! The real `witm` binary as a child process.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `witm`, listening on a free loopback port.
pub struct Witm {
    child: Child,
    /// The proxy's port.
    pub port: u16,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// How long a start may take: the first load of a Python component compiles
/// ~18 MB of wasm (later loads hit the compiled-code cache).
const START_TIMEOUT: Duration = Duration::from_secs(120);

impl Witm {
    /// Starts `binary` with `args` (plus `-p 0` and a shared `--confdir`) and
    /// waits until it listens. Returns the exit status and stderr if it exits.
    pub fn start(binary: &Path, args: &[&str]) -> Result<Witm, (ExitStatus, String)> {
        Self::start_with_env(binary, args, &[])
    }

    /// As [`Witm::start`], with environment variables set for witm.
    pub fn start_with_env(
        binary: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Witm, (ExitStatus, String)> {
        Self::start_in(binary, &crate::target_dir().join("e2e-confdir"), args, env)
    }

    /// As [`Witm::start_with_env`], with `confdir` as witm's state folder
    /// (its CA and compiled-plugin cache) instead of the shared one.
    pub fn start_in(
        binary: &Path,
        confdir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Witm, (ExitStatus, String)> {
        let mut child = Command::new(binary)
            .args(["-p", "0", "--confdir"])
            .arg(confdir)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn witm");
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let port = stderr.lock().unwrap().iter().find_map(|line| {
                line.split("proxy listening at http://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|address| address.rsplit(':').next())
                    .and_then(|port| port.trim().parse().ok())
            });
            if let Some(port) = port {
                return Ok(Witm {
                    child,
                    port,
                    stdout,
                    stderr,
                });
            }
            if let Some(status) = child.try_wait().expect("poll witm") {
                std::thread::sleep(Duration::from_millis(100));
                return Err((status, stderr.lock().unwrap().join("\n")));
            }
            assert!(
                Instant::now() < deadline,
                "witm did not start in time:\n{}",
                stderr.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The proxy URL to give to clients (`curl -x`).
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Lines written to stdout so far (one per flow).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Lines written to stderr so far (the log).
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Log lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.stderr().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `count` log lines contain `needle` (events on connection
    /// close are logged after the client has its answer).
    pub fn wait_for_log(&self, needle: &str, count: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log_count(needle) >= count {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The process's peak resident memory so far, in KiB (Linux: VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    /// The process's resident memory now, in KiB (Linux: VmRSS).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// How many files the process has open now (Linux: `/proc/PID/fd`).
    pub fn open_fds(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|entries| entries.count() as u64)
            .unwrap_or(0)
    }

    /// Starts the peak of [`Witm::peak_rss_kib`] again from the resident
    /// memory now (Linux: `/proc/PID/clear_refs`), so a test measures the
    /// peak of what it does rather than of start-up.
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("reset the peak resident memory");
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until a stdout line (a flow line, written once the response
    /// body has gone out) contains `needle`.
    pub fn wait_for_flow_line(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.stdout().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends SIGTERM without waiting.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }

    /// Sends SIGTERM and waits for the exit, after which all output is in.
    pub fn stop(&mut self) -> ExitStatus {
        self.terminate();
        let status = self.child.wait().expect("wait for witm");
        std::thread::sleep(Duration::from_millis(50));
        status
    }
}

impl Drop for Witm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capture(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}
