//! When witm runs out of file descriptors, its listeners pause and recover;
//! they do not spin on a failing `accept` or flood the log.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use witm_test_support::{Origin, curl, free_port};

use crate::sandbox::{scratch, start_with_config};

/// CPU time the process has used, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn set_open_files_limit(pid: u32, limit: usize) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--nofile={limit}:")])
        .status()
        .expect("run prlimit");
    assert!(status.success());
}

#[test]
fn out_of_file_descriptors_the_listeners_pause_and_recover() {
    let origin = Origin::start();
    let dir = scratch("out-of-files");
    let admin_port = free_port();
    let mut witm = start_with_config(&dir, &format!("admin_port = {admin_port}\n"), &[], &[]);
    assert!(witm.wait_for_log("metrics at", 1));
    let pid = witm.pid();
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    set_open_files_limit(pid, open + 8);

    // More connections than descriptors left: both listeners' accepts fail.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(("127.0.0.1", witm.port)).unwrap());
        held.push(TcpStream::connect(("127.0.0.1", admin_port)).unwrap());
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    let warnings = witm.log_count("accept failed");
    drop(held);
    set_open_files_limit(pid, 1024);

    assert!(
        used < 40,
        "witm used {used} ticks of CPU in 2 s while out of descriptors"
    );
    assert!(
        (1..=12).contains(&warnings),
        "{warnings} warnings in about 2 s: {:?}",
        witm.stderr().iter().rev().take(5).collect::<Vec<_>>()
    );
    // Both serve again.
    assert_eq!(
        curl(&witm.proxy_url(), &[&origin.url("/after")]).status,
        200
    );
    let metrics = curl(
        "",
        &[
            &format!("http://127.0.0.1:{admin_port}/metrics"),
            "--noproxy",
            "*",
        ],
    );
    assert_eq!(metrics.status, 200);
    witm.stop();
}
