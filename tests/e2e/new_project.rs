//! `witm new`: the project it makes in each language builds and passes its
//! own test (`./test.sh`, the plugin over a saved flow with `witm replay`);
//! that test fails once the plugin no longer adds its header; bad names,
//! taken folders and folders that are not a witm checkout are refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use witm_store::FlowFile;
use witm_test_support::{repo_root, target_dir};

use crate::witm_binary;

/// A fresh folder for one test's projects.
fn scratch(test: &str) -> PathBuf {
    let dir = target_dir().join("e2e-new").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `witm new ARGS --dir PARENT`, with no `WITM_SDK` from outside.
fn witm_new(parent: &Path, args: &[&str]) -> Output {
    Command::new(witm_binary())
        .arg("new")
        .args(args)
        .arg("--dir")
        .arg(parent)
        .env_remove("WITM_SDK")
        .output()
        .expect("run witm new")
}

/// One project's build and test at a time: a guest build takes a core and
/// up to GBs of memory (JavaScript).
static BUILDS: Mutex<()> = Mutex::new(());

/// Runs the project's `./test.sh` as a user would, with `WITM` unset (so
/// it uses the witm that made the project). The Rust build shares the
/// guests' target folder, where its dependencies are built already; witm
/// keeps its state (the compiled-plugin cache) with the other tests'.
fn project_test(project: &Path) -> Output {
    let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let output = Command::new(project.join("test.sh"))
        .env_remove("WITM")
        .env("WITM_CONFDIR", target_dir().join("e2e-confdir"))
        .env("CARGO_TARGET_DIR", target_dir().join("guests"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run the project's test.sh");
    eprintln!(
        "{}/test.sh (build and replay) took {:.1} s",
        project.display(),
        started.elapsed().as_secs_f64()
    );
    output
}

fn text(output: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `x-NAME` header of the response in the project's `out.witm`.
fn header_written(project: &Path, name: &str) -> Option<String> {
    let flows = FlowFile::open(&project.join("out.witm"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(flows.len(), 1);
    flows[0]
        .response
        .as_ref()
        .unwrap()
        .headers
        .get(&format!("x-{name}"))
}

/// Makes the project `name` in `lang` and runs its test, which must pass:
/// its plugin is built to NAME.wasm and wrote `x-NAME: hello` into the
/// replayed flow. Returns the project's folder.
fn made_and_passing(lang: &str, name: &str, extra: &[&str]) -> PathBuf {
    let parent = scratch(name);
    let mut args = vec!["--lang", lang, name];
    args.extend(extra);
    let made = witm_new(&parent, &args);
    assert!(made.status.success(), "witm new: {}", text(&made));
    let project = parent.join(name);
    let tested = project_test(&project);
    assert!(
        tested.status.success(),
        "{lang} ./test.sh: {}",
        text(&tested)
    );
    assert!(
        String::from_utf8_lossy(&tested.stdout).contains(&format!("ok: {name} added")),
        "{}",
        text(&tested)
    );
    assert!(project.join(format!("{name}.wasm")).is_file());
    assert_eq!(header_written(&project, name).as_deref(), Some("hello"));
    project
}

#[test]
fn a_rust_project_passes_its_test_and_fails_it_once_the_plugin_does_nothing() {
    let project = made_and_passing("rust", "new-rust", &[]);
    let source = project.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).unwrap();
    assert!(code.contains(r#""x-new-rust""#), "{code}");
    std::fs::write(&source, code.replace(r#""x-new-rust""#, r#""x-other""#)).unwrap();
    let tested = project_test(&project);
    assert!(!tested.status.success(), "{}", text(&tested));
    assert!(
        String::from_utf8_lossy(&tested.stderr)
            .contains("FAIL: new-rust did not add 'x-new-rust: hello' to the response"),
        "{}",
        text(&tested)
    );
    assert_eq!(header_written(&project, "new-rust"), None);
}

#[test]
fn a_python_project_passes_its_test_and_its_build_leaves_no_bytecode_beside_it() {
    let project = made_and_passing("python", "new-python", &[]);
    // componentize-py's interpreter would write `__pycache__` into every
    // folder it imports from: build output among the user's sources.
    let bytecode = project.join("__pycache__");
    assert!(!bytecode.exists(), "the build left {}", bytecode.display());
}

#[test]
fn a_javascript_project_passes_its_test() {
    made_and_passing("js", "new-js", &[]);
}

#[test]
fn a_go_project_passes_its_test_with_the_checkout_given() {
    let sdk = repo_root().canonicalize().unwrap();
    let project = made_and_passing("go", "new-go", &["--sdk", sdk.to_str().unwrap()]);
    let build = std::fs::read_to_string(project.join("build.sh")).unwrap();
    assert!(
        build.contains(&format!("sdk='{}'", sdk.display())),
        "{build}"
    );
}

#[test]
fn a_bad_name_exits_2_and_makes_nothing() {
    let parent = scratch("bad-names");
    for name in ["Add", "1a", "a_b", "a b", "../up", "a/b", "é", ""] {
        let made = witm_new(&parent, &["--lang", "rust", name]);
        assert_eq!(made.status.code(), Some(2), "{name:?}: {}", text(&made));
        assert!(
            String::from_utf8_lossy(&made.stderr).contains("a plugin name is lowercase letters"),
            "{name:?}: {}",
            text(&made)
        );
    }
    assert_eq!(std::fs::read_dir(&parent).unwrap().count(), 0);
    assert!(!target_dir().join("e2e-new/up").exists());
}

#[test]
fn a_folder_that_is_not_empty_is_refused_and_an_empty_one_taken() {
    let parent = scratch("taken");
    let taken = parent.join("taken");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("mine.txt"), "keep me").unwrap();
    let made = witm_new(&parent, &["--lang", "python", "taken"]);
    assert_eq!(made.status.code(), Some(2), "{}", text(&made));
    assert!(
        String::from_utf8_lossy(&made.stderr).contains("exists and is not empty"),
        "{}",
        text(&made)
    );
    let left: Vec<_> = std::fs::read_dir(&taken).unwrap().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(
        std::fs::read_to_string(taken.join("mine.txt")).unwrap(),
        "keep me"
    );

    std::fs::create_dir(parent.join("empty")).unwrap();
    let made = witm_new(&parent, &["--lang", "python", "empty"]);
    assert!(made.status.success(), "{}", text(&made));
    assert!(parent.join("empty/plugin.py").is_file());
}

#[test]
fn a_folder_that_is_not_a_witm_checkout_is_refused() {
    let parent = scratch("not-a-checkout");
    let elsewhere = parent.join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let by_flag = witm_new(
        &parent,
        &["--lang", "go", "p", "--sdk", elsewhere.to_str().unwrap()],
    );
    let by_env = Command::new(witm_binary())
        .args(["new", "--lang", "js", "p", "--dir"])
        .arg(&parent)
        .env("WITM_SDK", &elsewhere)
        .output()
        .unwrap();
    for (whence, made) in [("--sdk", by_flag), ("WITM_SDK", by_env)] {
        assert_eq!(made.status.code(), Some(2), "{whence}: {}", text(&made));
        let said = String::from_utf8_lossy(&made.stderr);
        assert!(
            said.contains(&format!("({whence}) is not a witm checkout")),
            "{}",
            text(&made)
        );
    }
    assert!(!parent.join("p").exists());
}
