//! How log lines look on stderr: `INFO [plugin] message key=value`.
//!
//! The plugin's name leads the line, so a person reading the log sees at
//! once which plugin spoke or failed; no timestamps, like mitmdump.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter installed by `main`.
pub struct WitmFormat;

#[derive(Default)]
struct Fields {
    message: String,
    plugin: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = text,
            "plugin" => self.plugin = Some(text.trim_matches('"').to_owned()),
            name => self.rest.push((name, text)),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "plugin" => self.plugin = Some(value.to_owned()),
            name => self.rest.push((name, value.to_owned())),
        }
    }
}

impl<S, N> FormatEvent<S, N> for WitmFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        write!(writer, "{:>5} ", event.metadata().level())?;
        if let Some(plugin) = &fields.plugin {
            write!(writer, "[{plugin}] ")?;
        }
        write!(writer, "{}", fields.message)?;
        for (name, value) in &fields.rest {
            write!(writer, " {name}={value}")?;
        }
        writeln!(writer)
    }
}
