//! runc-shaped log lines. containerd's runc shim reads `msg` of the last `"level":"error"` line
//! of `--log` (json), so the field names and level spellings must be logrus's, not tracing's.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Installs the global logger: `--log` file (appended) or stderr, text or json, info or debug.
pub fn init(log: Option<&Path>, format: LogFormat, debug: bool) -> Result<()> {
    // libcontainer narrates routine steps at info/warn ("cgroup X not supported") and logs
    // each failure at every layer it passes; runc users expect one line per problem. The
    // chain of causes reaches our final error (the init sends it whole), so the libraries
    // are heard only with --debug.
    let filter = if debug {
        Targets::new().with_default(Level::DEBUG)
    } else {
        Targets::new()
            .with_default(Level::INFO)
            .with_target("libcontainer", LevelFilter::OFF)
            .with_target("libcgroups", LevelFilter::OFF)
            .with_target("pathrs", LevelFilter::OFF)
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(Level::DEBUG)
        .event_format(RuncFormat { format });
    let result = match log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("failed to open log file {}", path.display()))?;
            builder
                .with_writer(Mutex::new(file))
                .finish()
                .with(filter)
                .try_init()
        }
        None => builder
            .with_writer(std::io::stderr)
            .finish()
            .with(filter)
            .try_init(),
    };
    // A second init (only possible in tests) keeps the first logger, which is fine.
    let _ = result;
    Ok(())
}

pub struct RuncFormat {
    pub format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut msg = MessageVisitor::default();
        event.record(&mut msg);
        let line = render(
            self.format,
            logrus_level(*event.metadata().level()),
            &msg.finish(),
            &now_rfc3339(),
        );
        writeln!(writer, "{line}")
    }
}

fn logrus_level(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One log line in runc's json or logrus text shape.
pub fn render(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        }
        LogFormat::Text => format!("time={} level={} msg={}", quote(time), level, quote(msg)),
    }
}

fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Folds the event's message and its structured fields into one `msg`, since runc's shape has
/// no room for extra keys that readers would look at.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_owned()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_runc_keys() {
        let line = render(
            LogFormat::Json,
            "error",
            "container \"x\" does not exist",
            "T",
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container \"x\" does not exist");
        assert_eq!(v["time"], "T");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn text_lines_are_logrus_shaped() {
        let line = render(LogFormat::Text, "warning", "a \"b\"", "T");
        assert_eq!(line, r#"time="T" level=warning msg="a \"b\"""#);
    }
}
