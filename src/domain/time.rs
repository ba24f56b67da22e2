//! Instants as whole microseconds since the Unix epoch (UTC), the precision of the wire
//! format and of both databases.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = i64;

/// Parses an RFC 3339 timestamp (any offset), dropping digits beyond microseconds.
pub fn parse(text: &str) -> Option<Micros> {
    let t = DateTime::parse_from_rfc3339(text.trim()).ok()?;
    Some(t.timestamp_micros())
}

/// The canonical wire form: UTC, six fractional digits, `Z`.
pub fn format(micros: Micros) -> String {
    match DateTime::<Utc>::from_timestamp_micros(micros) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Micros, true),
        // Out of chrono's range only through a corrupted database; still print something.
        None => format!("@{micros}us"),
    }
}

static LAST_ISSUED: AtomicI64 = AtomicI64::new(0);

/// This process's clock, strictly increasing across calls: two calls never return the
/// same instant, even within one microsecond.
pub fn now() -> Micros {
    after(Utc::now().timestamp_micros())
}

/// `candidate`, or one microsecond past the last instant this process issued if that is
/// later; so that instants handed out stay strictly increasing whatever the source clock.
pub fn after(candidate: Micros) -> Micros {
    let mut last = LAST_ISSUED.load(Ordering::Relaxed);
    loop {
        let next = candidate.max(last + 1);
        match LAST_ISSUED.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_offset_to_the_same_instant() {
        let z = parse("2026-11-20T10:00:00.123456Z").unwrap();
        assert_eq!(parse("2026-11-20T11:00:00.123456+01:00"), Some(z));
        assert_eq!(parse("2026-11-20T10:00:00.123456789Z"), Some(z));
        assert_eq!(format(z), "2026-11-20T10:00:00.123456Z");
        assert_eq!(
            format(parse("2026-11-20T10:00:00Z").unwrap()),
            "2026-11-20T10:00:00.000000Z"
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-11-20",
            "2026-11-20 10:00:00",
            "yesterday",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn now_is_strictly_increasing() {
        let mut prev = now();
        for _ in 0..10_000 {
            let t = now();
            assert!(t > prev);
            prev = t;
        }
    }
}
