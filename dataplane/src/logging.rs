//! Diagnostics through `tracing`, one line per event on stderr, in one of two formats:
//! - `text`: `2026-12-06T19:00:00.000000+0000  INFO aperture-dataplane: message key=value`;
//! - `journald`: `<6>aperture-dataplane: message key=value`, the priority prefix that
//!   journald reads from a service's stderr (it stamps the time itself).
//!
//! journald is chosen when stderr is connected to the journal (systemd sets
//! `JOURNAL_STREAM`), text otherwise; `APERTURE_LOG_FORMAT=text|journald` overrides. The
//! level is `--log-level` if given, else `APERTURE_LOG` (`tracing` filter syntax, e.g.
//! `info,aperture_dataplane::control=debug`), else `info`.
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Journald,
}

impl Format {
    /// The format for this process's stderr (see the module documentation).
    pub fn detect() -> Format {
        match std::env::var("APERTURE_LOG_FORMAT").as_deref() {
            Ok("journald") => Format::Journald,
            Ok("text") => Format::Text,
            _ if std::env::var_os("JOURNAL_STREAM").is_some() => Format::Journald,
            _ => Format::Text,
        }
    }
}

/// The syslog priority journald files a line of `level` under.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

struct Line {
    format: Format,
    program: &'static str,
}

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        match self.format {
            Format::Journald => write!(w, "<{}>", priority(level))?,
            Format::Text => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                write!(w, "{} {:>5} ", crate::flowlog::iso_time(now), level)?
            }
        }
        write!(w, "{}: ", self.program)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Installs the subscriber for `program` (the name lines carry). `level`: the command line's
/// `--log-level`. Fails on a filter that does not parse.
pub fn init(program: &'static str, level: Option<&str>) -> Result<(), String> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).map_err(|e| format!("--log-level {l:?}: {e}"))?,
        None => match std::env::var("APERTURE_LOG") {
            Ok(f) => EnvFilter::try_new(&f).map_err(|e| format!("APERTURE_LOG={f:?}: {e}"))?,
            Err(_) => EnvFilter::new("info"),
        },
    };
    let line = Line {
        format: Format::detect(),
        program,
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(line)
        .try_init();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journald_priorities_follow_syslog() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
    }
}
