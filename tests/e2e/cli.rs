//! Bad input on the command line: one clear line, exit code 2, no panic.

use std::process::Command;

use witm_test_support::{Witm, target_dir};

use crate::witm_binary;

fn run(args: &[&str]) -> (i32, String) {
    match Witm::start(witm_binary(), args) {
        Ok(mut witm) => {
            witm.stop();
            panic!("witm started with {args:?}");
        }
        Err((status, stderr)) => (status.code().unwrap_or(-1), stderr),
    }
}

fn assert_clear_error(args: &[&str], expected: &str) {
    let (code, stderr) = run(args);
    assert_eq!(code, 2, "{args:?}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{args:?}: {stderr:?} lacks {expected:?}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_plugin_file_is_one_clear_error() {
    assert_clear_error(
        &["-s", "/nonexistent/plugin.wasm"],
        "witm: error: plugin file not found: /nonexistent/plugin.wasm",
    );
}

#[test]
fn a_file_that_is_not_a_component_is_one_clear_error() {
    let dir = target_dir().join("e2e-files");
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("not-wasm.wasm");
    std::fs::write(&text, "hello").unwrap();
    assert_clear_error(
        &["-s", text.to_str().unwrap()],
        "not a WebAssembly component witm can run",
    );
    // A core wasm module is not a component either.
    let module = dir.join("core-module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    assert_clear_error(
        &["-s", module.to_str().unwrap()],
        "not a WebAssembly component witm can run",
    );
}

#[test]
fn a_bad_flag_exits_with_2() {
    let output = Command::new(witm_binary())
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
    let output = Command::new(witm_binary())
        .args(["-p", "not-a-port"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_plugin_whose_start_fails_stops_the_proxy_with_its_message() {
    // The tag plugin refuses to start without its argument.
    let tag = witm_test_support::guests().rust("tag");
    assert_clear_error(&["-s", tag.to_str().unwrap()], "usage: tag.wasm <tag>");
}

#[test]
fn proxy_options_can_come_from_the_configuration_and_the_command_line_wins() {
    let origin = witm_test_support::Origin::start();
    let dir = target_dir().join("e2e-files");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("options.toml");
    // listen_port 1 would fail to bind: the -p 0 of the command line wins.
    std::fs::write(&config, "listen_port = 1\nquiet = true\n").unwrap();
    let mut witm = Witm::start(witm_binary(), &["--config", config.to_str().unwrap()])
        .unwrap_or_else(|(status, log)| panic!("witm exited ({status}):\n{log}"));
    let response = witm_test_support::curl(&witm.proxy_url(), &[&origin.url("/page")]);
    assert_eq!(response.status, 200);
    witm.stop();
    assert!(witm.stdout().is_empty(), "quiet: {:?}", witm.stdout());
    assert_clear_error(
        &["--set", "stream_large_bodies=lots"],
        "--stream-large-bodies",
    );
    assert_clear_error(&["--set", "bogus=1"], "--bogus");
    // A value for a bare flag is refused as such, not read as a command.
    assert_clear_error(
        &["--set", "share_server_connections=\"yes\""],
        "unexpected value 'yes' for '--share-server-connections'",
    );
}

#[test]
fn witm_options_lists_every_option_with_a_key_the_configuration_takes() {
    let output = Command::new(witm_binary()).arg("options").output().unwrap();
    assert!(output.status.success());
    let listed = String::from_utf8_lossy(&output.stdout).into_owned();
    // One block per option: flags, configuration key, default, meaning.
    let blocks: Vec<&str> = listed
        .split("\n\n")
        .filter(|b| b.starts_with('-'))
        .collect();
    assert!(blocks.len() >= 25, "{listed}");
    for (flag, default) in [
        ("-p, --listen-port", "8080"),
        ("--listen-host", "127.0.0.1"),
        ("--stream-large-bodies", "128m"),
        ("--tunnel-idle-timeout-ms", "600000"),
        ("--ssl-insecure", "false"),
    ] {
        let block = blocks
            .iter()
            .find(|b| b.starts_with(flag))
            .unwrap_or_else(|| panic!("{flag} is listed: {listed}"));
        assert!(block.contains(&format!("default: {default}\n")), "{block}");
    }
    // Every key it names is one the configuration takes, with its default.
    let mut checked = 0;
    for block in &blocks {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {block}"))
                .to_owned()
        };
        let (key, default) = (field("config key: "), field("default: "));
        if key.starts_with("none") || default == "none" {
            continue;
        }
        let set = format!("{key}={default}");
        let output = Command::new(witm_binary())
            .args(["--set", &set, "options"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "--set {set}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 15, "{checked} keys checked");
}

#[test]
fn workers_sets_how_many_threads_serve_and_refuses_none() {
    let origin = witm_test_support::Origin::start();
    let threads = |pid: u32| -> usize {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim().starts_with("witm-worker-"))
            .count()
    };
    for (workers, configured) in [("1", false), ("3", true)] {
        let dir = target_dir().join("e2e-files");
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join(format!("workers-{workers}.toml"));
        std::fs::write(&config, format!("workers = {workers}\n")).unwrap();
        let args: Vec<String> = if configured {
            vec!["--config".into(), config.to_str().unwrap().into()]
        } else {
            vec!["--workers".into(), workers.into()]
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut witm = Witm::start(witm_binary(), &args)
            .unwrap_or_else(|(status, log)| panic!("witm exited ({status}):\n{log}"));
        let response = witm_test_support::curl(&witm.proxy_url(), &[&origin.url("/page")]);
        assert_eq!(response.status, 200);
        assert_eq!(threads(witm.pid()).to_string(), workers);
        witm.stop();
    }
    assert_clear_error(&["--workers", "0"], "--workers");
    assert_clear_error(&["--workers", "100000"], "--workers");
}
