//! The shim's log: logrus-style lines into the `log` fifo containerd opens in the bundle,
//! which containerd copies into its own log.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// The shim's `tracing` subscriber: events only (the shim opens no spans), one line each.
struct FifoLog {
    fifo: Mutex<File>,
    max: LevelFilter,
}

/// Sends `tracing` events to the `log` fifo in the current directory (the bundle). Without
/// one (a shim run by hand) they are dropped, as containerd would have nowhere to put them.
pub fn init(debug: bool) {
    let Ok(fifo) = OpenOptions::new().write(true).open("log") else {
        return;
    };
    let max = if debug {
        LevelFilter::DEBUG
    } else {
        LevelFilter::INFO
    };
    let fifo = Mutex::new(fifo);
    let _ = tracing::subscriber::set_global_default(FifoLog { fifo, max });
}

impl Subscriber for FifoLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let line = format_line(SystemTime::now(), *event.metadata().level(), &fields);
        if let Ok(mut f) = self.fifo.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's message and its other fields, the latter already as logrus writes them.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.record_str(field, &format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
            return;
        }
        // logrus quotes a value only when it must.
        let bare = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._/@^+:".contains(&b));
        if bare {
            let _ = write!(self.rest, " {}={value}", field.name());
        } else {
            let _ = write!(
                self.rest,
                " {}={}",
                field.name(),
                serde_json::Value::from(value)
            );
        }
    }
}

fn format_line(at: SystemTime, level: Level, fields: &Fields) -> String {
    let level = match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    };
    format!(
        "time=\"{}\" level={level} msg={}{}\n",
        rfc3339(at),
        serde_json::Value::from(fields.message.as_str()),
        fields.rest
    )
}

/// UTC time as RFC 3339 with nanoseconds, the form logrus writes.
fn rfc3339(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_nanos()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_784), (2026, 11, 27));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn line_is_logrus_text() {
        let at = UNIX_EPOCH + Duration::new(1_795_737_600 + 3_723, 5);
        let fields = Fields {
            message: "say \"hi\"\n".into(),
            ..Default::default()
        };
        let line = format_line(at, Level::WARN, &fields);
        assert_eq!(
            line,
            "time=\"2026-11-27T01:02:03.000000005Z\" level=warning msg=\"say \\\"hi\\\"\\n\"\n"
        );
    }

    #[test]
    fn fields_follow_the_message_quoted_only_when_needed() {
        let mut fields = Fields {
            message: "event not published".into(),
            ..Default::default()
        };
        let cs = tracing::callsite::Identifier(&CALLSITE);
        let set = tracing::field::FieldSet::new(&["topic", "error", "attempt"], cs);
        let mut names = set.iter();
        let (topic, error, attempt) = (names.next(), names.next(), names.next());
        fields.record_str(&topic.unwrap(), "/tasks/exit");
        fields.record_str(&error.unwrap(), "connection refused");
        fields.record_debug(&attempt.unwrap(), &3);
        let at = UNIX_EPOCH + Duration::new(1_795_737_600, 0);
        assert_eq!(
            format_line(at, Level::INFO, &fields),
            "time=\"2026-11-27T00:00:00.000000000Z\" level=info msg=\"event not published\" \
             topic=/tasks/exit error=\"connection refused\" attempt=3\n"
        );
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("only its identity is used")
        }
    }
}
