//! The shim's log: logrus-style lines into the `log` fifo containerd opens in the bundle,
//! which containerd copies into its own log.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

struct FifoLogger(Mutex<File>);

/// Sends `log` records to the `log` fifo in the current directory (the bundle). Without one
/// (a shim run by hand) the records are dropped, as containerd would have nowhere to put them.
pub fn init(debug: bool) {
    let Ok(file) = OpenOptions::new().write(true).open("log") else {
        return;
    };
    // Leaked: the logger lives as long as the process.
    if log::set_logger(Box::leak(Box::new(FifoLogger(Mutex::new(file))))).is_ok() {
        log::set_max_level(if debug {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Info
        });
    }
}

impl log::Log for FifoLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(
            SystemTime::now(),
            record.level(),
            &record.args().to_string(),
        );
        if let Ok(mut f) = self.0.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

fn format_line(at: SystemTime, level: log::Level, msg: &str) -> String {
    let level = match level {
        log::Level::Error => "error",
        log::Level::Warn => "warning",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    format!(
        "time=\"{}\" level={level} msg={}\n",
        rfc3339(at),
        serde_json::Value::from(msg)
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
        let line = format_line(at, log::Level::Warn, "say \"hi\"\n");
        assert_eq!(
            line,
            "time=\"2026-11-27T01:02:03.000000005Z\" level=warning msg=\"say \\\"hi\\\"\\n\"\n"
        );
    }
}
