//! `witm new --lang LANG NAME`: a plugin project to start from, so that
//! writing a plugin begins with something that builds and passes a test —
//! the plugin (an add-header, like `examples/add-header`), `./build.sh`, a
//! saved flow (`sample.witm`) and `./test.sh`, which runs the plugin over
//! that flow with `witm replay` and checks the header it adds.
//!
//! The templates are the files under `templates/`, built into the binary.
//! The SDK, the WIT and the build scripts are not copied: the project names
//! a witm checkout by path (`--sdk`, else `WITM_SDK`, else the checkout this
//! binary was built from), so a plugin builds against the WIT its witm runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use witm_flow::testing::{tflow, with_response};
use witm_store::{FlowWriter, StoreError};

/// The checkout this binary was built from: the default SDK.
const BUILT_FROM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `witm new`'s arguments.
#[derive(clap::Args, Debug)]
pub struct NewArgs {
    /// The plugin's language.
    #[arg(long, value_enum)]
    lang: Language,
    /// The plugin's name: lowercase letters, digits and dashes, starting
    /// with a letter. The project is the folder PARENT/NAME; the plugin is
    /// built to NAME.wasm.
    #[arg(value_parser = parse_name)]
    name: String,
    /// Where to create the project's folder.
    #[arg(long, value_name = "PARENT", default_value = ".")]
    dir: PathBuf,
    /// The witm checkout whose SDK, WIT and build scripts the project uses
    /// (default: $WITM_SDK, else the checkout this witm was built from).
    #[arg(long, value_name = "WITM_CHECKOUT")]
    sdk: Option<PathBuf>,
}

/// The languages a project can be made in.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Language {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
    Go,
}

/// One file of a project: where it goes, its template, whether it runs.
struct Template {
    path: &'static str,
    text: &'static str,
    executable: bool,
}

/// The files every project has, whatever its language.
const COMMON: [Template; 3] = [
    Template {
        path: "test.sh",
        text: include_str!("../../../templates/common/test.sh"),
        executable: true,
    },
    Template {
        path: "README.md",
        text: include_str!("../../../templates/common/README.md"),
        executable: false,
    },
    Template {
        path: ".gitignore",
        text: include_str!("../../../templates/common/gitignore"),
        executable: false,
    },
];

const RUST: [Template; 3] = [
    Template {
        path: "Cargo.toml",
        text: include_str!("../../../templates/rust/Cargo.toml"),
        executable: false,
    },
    Template {
        path: "src/lib.rs",
        text: include_str!("../../../templates/rust/src/lib.rs"),
        executable: false,
    },
    Template {
        path: "build.sh",
        text: include_str!("../../../templates/rust/build.sh"),
        executable: true,
    },
];

const PYTHON: [Template; 2] = [
    Template {
        path: "plugin.py",
        text: include_str!("../../../templates/python/plugin.py"),
        executable: false,
    },
    Template {
        path: "build.sh",
        text: include_str!("../../../templates/python/build.sh"),
        executable: true,
    },
];

const JS: [Template; 2] = [
    Template {
        path: "plugin.js",
        text: include_str!("../../../templates/js/plugin.js"),
        executable: false,
    },
    Template {
        path: "build.sh",
        text: include_str!("../../../templates/js/build.sh"),
        executable: true,
    },
];

const GO: [Template; 2] = [
    Template {
        path: "plugin.go",
        text: include_str!("../../../templates/go/plugin.go"),
        executable: false,
    },
    Template {
        path: "build.sh",
        text: include_str!("../../../templates/go/build.sh"),
        executable: true,
    },
];

impl Language {
    fn templates(self) -> &'static [Template] {
        match self {
            Language::Rust => &RUST,
            Language::Python => &PYTHON,
            Language::Js => &JS,
            Language::Go => &GO,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
            Language::Go => "Go",
        }
    }

    /// The plugin's source file in the project.
    fn source(self) -> &'static str {
        match self {
            Language::Rust => "src/lib.rs",
            Language::Python => "plugin.py",
            Language::Js => "plugin.js",
            Language::Go => "plugin.go",
        }
    }

    /// The file of a checkout this language's projects build with.
    fn needs(self) -> &'static str {
        match self {
            Language::Rust => "plugins/sdk/Cargo.toml",
            Language::Python => "plugins/build-python.sh",
            Language::Js => "plugins/build-js.sh",
            Language::Go => "plugins/build-go.sh",
        }
    }

    /// The project's file that names the checkout.
    fn names_checkout_in(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            _ => "build.sh",
        }
    }
}

/// A plugin name: `[a-z][a-z0-9-]*`, at most 64 characters. It becomes a
/// folder, a file name, a crate name and part of a header name, so nothing
/// else is let through.
fn parse_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64;
    match valid {
        true => Ok(name.to_owned()),
        false => Err(
            "a plugin name is lowercase letters, digits and dashes, starting with a letter \
             (at most 64 characters), e.g. add-header"
                .into(),
        ),
    }
}

/// `witm new`: creates the project, or says why not.
pub fn run(args: &NewArgs) -> ExitCode {
    match create(args) {
        Ok(dir) => {
            println!(
                "created {}, a {} plugin; build and test it with:\n  cd {} && ./test.sh",
                dir.display(),
                args.lang.title(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => crate::fail(&e),
    }
}

fn create(args: &NewArgs) -> Result<PathBuf, String> {
    let sdk = checkout(args.sdk.as_deref(), args.lang)?;
    let sdk_text = utf8(&sdk, "the witm checkout's path")?;
    // The binary test.sh falls back to: this one, which matches the checkout.
    let witm = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.to_str().map(str::to_owned))
        .unwrap_or_else(|| "witm".into());
    let name = args.name.as_str();
    let vars = values(name, args.lang, sdk_text, &witm);
    let dir = args.dir.join(name);
    let created = claim(&dir)?;
    let written = write_project(&dir, &sdk, args.lang, &vars);
    if let Err(e) = written {
        if created {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Err(e);
    }
    Ok(dir)
}

/// The value of each `{{key}}` of the templates.
fn values(name: &str, lang: Language, sdk: &str, witm: &str) -> Vec<(&'static str, String)> {
    vec![
        ("name", name.to_owned()),
        ("crate", name.replace('-', "_")),
        ("language", lang.title().to_owned()),
        ("source", lang.source().to_owned()),
        ("sdk", sdk.to_owned()),
        ("sdk_sh", shell_quoted(sdk)),
        ("sdk_crate", toml_quoted(&format!("{sdk}/plugins/sdk"))),
        ("sdk_file", lang.names_checkout_in().to_owned()),
        ("witm", witm.to_owned()),
        ("witm_sh", shell_quoted(witm)),
    ]
}

/// The witm checkout to build with, made absolute: it must hold the WIT and
/// what this language builds with.
fn checkout(given: Option<&Path>, lang: Language) -> Result<PathBuf, String> {
    let from_env = std::env::var_os("WITM_SDK").filter(|v| !v.is_empty());
    let (dir, whence) = match (given, from_env) {
        (Some(dir), _) => (dir.to_owned(), "--sdk"),
        (None, Some(dir)) => (PathBuf::from(dir), "WITM_SDK"),
        (None, None) => (
            PathBuf::from(BUILT_FROM),
            "the checkout witm was built from",
        ),
    };
    if !dir.join("wit/plugin.wit").is_file() || !dir.join(lang.needs()).is_file() {
        return Err(format!(
            "{} ({whence}) is not a witm checkout: it needs wit/plugin.wit and {}; \
             pass --sdk DIR or set WITM_SDK to a witm checkout",
            dir.display(),
            lang.needs()
        ));
    }
    dir.canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Creates `dir`, or takes it if it is an empty folder; whether it was
/// created.
fn claim(dir: &Path) -> Result<bool, String> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => return Ok(false),
        Ok(false) => return Err(format!("{} exists and is not empty", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot use {}: {e}", dir.display())),
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(true)
}

fn write_project(
    dir: &Path,
    sdk: &Path,
    lang: Language,
    vars: &[(&str, String)],
) -> Result<(), String> {
    for template in COMMON.iter().chain(lang.templates()) {
        let path = dir.join(template.path);
        write_file(&path, &render(template.text, vars), template.executable)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    // The dependency versions the SDK is built and tested with.
    if let Language::Rust = lang {
        let lock = sdk.join("plugins/Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, dir.join("Cargo.lock"))
                .map_err(|e| format!("cannot copy {}: {e}", lock.display()))?;
        }
    }
    let sample = dir.join("sample.witm");
    write_sample(&sample).map_err(|e| format!("cannot write {}: {e}", sample.display()))
}

fn write_file(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// The flow the project's test runs its plugin over: a GET of
/// http://example.com/ answered 200 with a line of text.
fn write_sample(path: &Path) -> Result<(), StoreError> {
    let flow = with_response(
        tflow("http://example.com/"),
        200,
        "Hello from the sample flow.\n",
    );
    let mut writer = FlowWriter::create(path)?;
    writer.write(&flow)?;
    writer.finish()?;
    Ok(())
}

/// `text` with each `{{key}}` replaced by its value, in one pass (a value
/// is never read as a template).
fn render(text: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").expect("a template closes its {{");
        let key = &after[..end];
        let value = vars
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("no value for {{{{{key}}}}} in a template"));
        out.push_str(&value.1);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

fn utf8<'a>(path: &'a Path, what: &str) -> Result<&'a str, String> {
    path.to_str()
        .ok_or_else(|| format!("{what} is not UTF-8: {}", path.display()))
}

/// `text` as one word for the shell, in single quotes.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `text` as a TOML string.
fn toml_quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of every template has a value (`render` panics on one
    /// that does not: a bug of the templates, caught here), and every
    /// `{{` is a key.
    #[test]
    fn every_template_renders() {
        for lang in [Language::Rust, Language::Python, Language::Js, Language::Go] {
            let vars = values("a-b", lang, "/sdk", "/bin/witm");
            for template in COMMON.iter().chain(lang.templates()) {
                let text = render(template.text, &vars);
                assert!(!text.contains("{{"), "{}: {text}", template.path);
                assert!(
                    text.contains("a-b") || text.contains("a_b"),
                    "{}",
                    template.path
                );
            }
        }
    }

    #[test]
    fn names() {
        for good in ["a", "add-header", "x2", "a-b-c"] {
            assert!(parse_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(65);
        for bad in ["", "A", "2a", "-a", "a_b", "a b", "a/b", "../a", "é", &long] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quoted("/a b/it's"), r"'/a b/it'\''s'");
        for path in [r#"/a "b"\c"#, "/it's \"x\"", "/a\nb"] {
            let line = format!("path = {}", toml_quoted(path));
            let table: toml::Table = toml::from_str(&line).unwrap();
            assert_eq!(table["path"].as_str(), Some(path), "{line}");
        }
    }
}
