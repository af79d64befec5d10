//! The commands that work on saved flows with no network: `witm replay`
//! (plugins over a file, or over one flow of it), `witm flows` and
//! `witm export`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use witm_flow::{Flow, HttpMessage};
use witm_plugin_host::PluginChain;
use witm_store::{AtomicFile, Filter, FlowFile, FlowWriter, StoreError};

/// Which flow of a file the one-shot replay runs on.
#[derive(Clone, Debug)]
pub enum FlowSelector {
    /// The n-th flow, counting from 1 as `witm flows` prints them.
    Index(usize),
    /// The flow with this id (or id prefix).
    Id(String),
}

impl std::str::FromStr for FlowSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<usize>() {
            Ok(0) => Err("flows are counted from 1".into()),
            Ok(n) => Ok(FlowSelector::Index(n)),
            Err(_) if s.len() >= 4 => Ok(FlowSelector::Id(s.to_owned())),
            Err(_) => Err(format!(
                "{s:?}: expected a flow number or (part of) a flow id"
            )),
        }
    }
}

impl FlowSelector {
    fn selects(&self, index: usize, flow: &Flow) -> bool {
        match self {
            FlowSelector::Index(n) => *n == index,
            FlowSelector::Id(id) => flow.id.starts_with(id.as_str()),
        }
    }
}

/// What `witm replay` was asked to do, beyond loading the plugins.
pub struct ReplayJob<'a> {
    /// The flows to run over.
    pub input: &'a Path,
    /// Where to write the flows after the plugins ran.
    pub output: Option<&'a Path>,
    /// Only flows matching this.
    pub filter: Option<&'a Filter>,
    /// One flow only, printed in full (the "pipe" shortcut).
    pub one: Option<&'a FlowSelector>,
    /// No line per flow.
    pub quiet: bool,
}

/// Runs the plugins over saved flows in the seed's order: `start` (already
/// run by loading), then per flow `request`, `response` if it has one,
/// `error` if it has one; then `done`.
pub async fn replay(chain: &PluginChain, job: ReplayJob<'_>) -> ExitCode {
    let mut input = match FlowFile::open(job.input) {
        Ok(input) => input,
        Err(e) => return crate::fail(&e.to_string()),
    };
    let created = job
        .output
        .map(|path| AtomicFile::create(path).and_then(|file| FlowWriter::for_path(file, path)))
        .transpose();
    let mut output = match created {
        Ok(output) => output,
        Err(e) => return crate::fail(&format!("cannot write {}: {e}", show(job.output))),
    };
    let (mut index, mut ran) = (0, 0);
    let mut stdout = std::io::stdout().lock();
    for flow in input.by_ref() {
        let mut flow = match flow {
            Ok(flow) => flow,
            Err(e) => {
                chain.done().await;
                return crate::fail(&format!(
                    "{}: {e}; {} not written",
                    job.input.display(),
                    show(job.output)
                ));
            }
        };
        index += 1;
        if job.filter.is_some_and(|f| !f.matches(&flow)) {
            continue;
        }
        if job.one.is_some_and(|one| !one.selects(index, &flow)) {
            continue;
        }
        ran += 1;
        witm_addons::offline::run_events(chain, &mut flow).await;
        if let Some(output) = &mut output {
            match output.write(&flow) {
                Ok(()) => {}
                Err(e @ StoreError::TooLarge { .. }) => {
                    tracing::warn!("flow {} not written: {e}", flow.id);
                }
                Err(e) => {
                    chain.done().await;
                    return crate::fail(&format!("cannot write {}: {e}", show(job.output)));
                }
            }
        }
        if job.one.is_some() {
            let _ = stdout.write_all(describe(&flow).as_bytes());
            break;
        } else if !job.quiet {
            let _ = writeln!(stdout, "{}", summary(&flow));
        }
    }
    drop(stdout);
    chain.done().await;
    if let Some(skipped) = input.skipped_summary() {
        tracing::warn!("{}: {skipped}", job.input.display());
    }
    if job.one.is_some() && ran == 0 {
        return crate::fail(&format!("{}: no such flow", job.input.display()));
    }
    if let Some(output) = output {
        if let Err(e) = output.finish().and_then(AtomicFile::commit) {
            return crate::fail(&format!("cannot write {}: {e}", show(job.output)));
        }
        tracing::info!("{ran} flows written to {}", show(job.output));
    }
    ExitCode::SUCCESS
}

fn show(path: Option<&Path>) -> String {
    path.map_or_else(|| "-".into(), |p| p.display().to_string())
}

/// `witm flows FILE`: one line per flow, numbered.
pub fn list(path: &Path, filter: Option<&Filter>) -> ExitCode {
    let mut input = match FlowFile::open(path) {
        Ok(input) => input,
        Err(e) => return crate::fail(&e.to_string()),
    };
    let mut stdout = std::io::stdout().lock();
    let mut index = 0;
    for flow in input.by_ref() {
        let flow = match flow {
            Ok(flow) => flow,
            Err(e) => return crate::fail(&format!("{}: {e}", path.display())),
        };
        index += 1;
        if filter.is_none_or(|f| f.matches(&flow))
            && writeln!(stdout, "{index:>4} {}", summary(&flow)).is_err()
        {
            // stdout closed (e.g. `| head`): nothing more to say.
            return ExitCode::SUCCESS;
        }
    }
    if let Some(skipped) = input.skipped_summary() {
        tracing::warn!("{}: {skipped}", path.display());
    }
    ExitCode::SUCCESS
}

/// What `witm export` writes.
#[derive(Clone, Copy, Debug)]
pub enum ExportFormat {
    /// HAR 1.2 (`--har`).
    Har,
    /// A mitmproxy capture, flow format 21 (`--mitmproxy`).
    Mitmproxy,
}

/// `witm export`: the flows of `input` (those `filter` selects) in
/// `format`, to `output` (written whole, then renamed) or stdout.
pub fn export(
    format: ExportFormat,
    input: &Path,
    output: Option<&PathBuf>,
    filter: Option<&Filter>,
) -> ExitCode {
    let mut file = match FlowFile::open(input) {
        Ok(file) => file,
        Err(e) => return crate::fail(&e.to_string()),
    };
    let mut flows = Vec::new();
    for flow in file.by_ref() {
        match flow {
            Ok(flow) if filter.is_none_or(|f| f.matches(&flow)) => flows.push(flow),
            Ok(_) => {}
            Err(e) => return crate::fail(&format!("{}: {e}", input.display())),
        }
    }
    if let Some(skipped) = file.skipped_summary() {
        tracing::warn!("{}: {skipped}", input.display());
    }
    let encoded = match format {
        ExportFormat::Har => {
            let mut har = witm_store::har::export(&flows).into_bytes();
            har.push(b'\n');
            har
        }
        ExportFormat::Mitmproxy => {
            let mut capture = Vec::new();
            for flow in &flows {
                witm_store::mitmproxy_export::write_flow(flow, &mut capture);
            }
            capture
        }
    };
    match output {
        None => {
            let _ = std::io::stdout().lock().write_all(&encoded);
            ExitCode::SUCCESS
        }
        Some(path) => {
            let written = AtomicFile::create(path).and_then(|mut file| {
                file.write_all(&encoded)?;
                file.commit()
            });
            match written {
                Ok(()) => {
                    tracing::info!("{} flows written to {}", flows.len(), path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => crate::fail(&format!("cannot write {}: {e}", path.display())),
            }
        }
    }
}

/// One line for a flow, like mitmdump's: client, method, URL, then the
/// status and size or the error.
pub fn summary(flow: &Flow) -> String {
    if let Some(tcp) = &flow.tcp {
        let (up, down) = tcp.bytes_each_way();
        let error = flow
            .error
            .as_ref()
            .map_or(String::new(), |e| format!(", error: {}", e.message));
        return format!(
            "{} TCP {} {} messages, {} up, {} down{error}",
            flow.client.address,
            flow.request.url(),
            tcp.messages.len() as u64 + tcp.not_kept,
            witm_proxy::human_size(up as u64),
            witm_proxy::human_size(down as u64),
        );
    }
    let outcome = match (&flow.response, &flow.error) {
        (Some(r), _) => {
            let size = r.body.bytes().map_or_else(
                || "streamed".into(),
                |b| witm_proxy::human_size(b.len() as u64),
            );
            format!("{} {} {size}", r.status, r.reason)
        }
        (None, Some(e)) => format!("error: {}", e.message),
        (None, None) if flow.killed => "killed".into(),
        (None, None) => "no response".into(),
    };
    let websocket = flow.websocket.as_ref().map_or(String::new(), |w| {
        format!(
            ", WebSocket: {} messages",
            w.messages.len() as u64 + w.not_kept
        )
    });
    format!(
        "{} {} {} {}{websocket}",
        flow.client.address,
        flow.request.method,
        flow.request.url(),
        outcome
    )
}

/// A flow in full: request and response heads and their decoded bodies.
pub fn describe(flow: &Flow) -> String {
    let mut out = format!("flow {}\n", flow.id);
    let r = &flow.request;
    if let Some(tcp) = &flow.tcp {
        out += &format!("TCP {}\n", r.url());
        for m in &tcp.messages {
            let arrow = if m.from_client { ">" } else { "<" };
            out += &format!("{arrow} {}\n", m.content.escape_ascii());
        }
        if tcp.not_kept > 0 {
            out += &format!("… {} more messages not kept\n", tcp.not_kept);
        }
    } else {
        out += &format!("{} {} {}\n", r.method, r.url(), r.http_version);
    }
    for (name, value) in r.headers.iter() {
        out += &format!("{name}: {}\n", String::from_utf8_lossy(value));
    }
    out += &body_text(r);
    if let Some(response) = &flow.response {
        out += &format!(
            "\n{} {} {}\n",
            response.http_version, response.status, response.reason
        );
        for (name, value) in response.headers.iter() {
            out += &format!("{name}: {}\n", String::from_utf8_lossy(value));
        }
        out += &body_text(response);
    }
    if let Some(error) = &flow.error {
        out += &format!("\nerror: {}\n", error.message);
    }
    if let Some(w) = &flow.websocket {
        out += "\nWebSocket\n";
        for m in &w.messages {
            let arrow = if m.from_client { ">" } else { "<" };
            let dropped = if m.dropped { " (dropped)" } else { "" };
            out += &match m.is_text {
                true => format!("{arrow} {}{dropped}\n", String::from_utf8_lossy(&m.content)),
                false => format!("{arrow} [{} bytes binary]{dropped}\n", m.content.len()),
            };
        }
        if w.not_kept > 0 {
            out += &format!("… {} more messages not kept\n", w.not_kept);
        }
        if let Some(code) = w.close_code {
            let by = match w.closed_by_client {
                Some(true) => " by the client",
                Some(false) => " by the server",
                None => "",
            };
            out += &format!("closed{by}: {code} {}\n", w.close_reason);
        }
    }
    for (key, value) in &flow.metadata {
        out += &format!("metadata {key}: {}\n", value.text());
    }
    if flow.is_marked() {
        out += "marked\n";
    }
    if !flow.comment.is_empty() {
        out += &format!("comment: {}\n", flow.comment);
    }
    out
}

/// The decoded body as text, or a note saying why it is not shown.
fn body_text(message: &impl HttpMessage) -> String {
    match message.content() {
        Ok(content) if content.is_empty() => String::new(),
        Ok(content) => match std::str::from_utf8(&content) {
            Ok(text) if text.ends_with('\n') => format!("\n{text}"),
            Ok(text) => format!("\n{text}\n"),
            Err(_) => format!("\n[{} bytes of binary content]\n", content.len()),
        },
        Err(e) => format!("\n[body: {e}]\n"),
    }
}
