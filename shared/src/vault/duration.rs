//! Go's `time.Duration` text, as autopilot reports `last_contact`.

use std::time::Duration;

/// Parses Go's `time.Duration` text (`1.5s`, `250ms`, `1m30s`, `0s`), as autopilot sends it.
/// A duration too long for [`Duration`] is not a duration: `None`, never a panic.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    match rest {
        "" => return None,
        "0" => return Some(Duration::ZERO),
        _ => {}
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_as_autopilot_sends_them() {
        let ms = |v: u64| Some(Duration::from_millis(v));
        assert_eq!(parse_go_duration("0s"), ms(0));
        assert_eq!(parse_go_duration("0"), ms(0));
        assert_eq!(parse_go_duration("250ms"), ms(250));
        assert_eq!(parse_go_duration("1.5s"), ms(1500));
        assert_eq!(parse_go_duration("1m30s"), ms(90_000));
        assert_eq!(parse_go_duration("1h0m0.5s"), ms(3_600_500));
        assert_eq!(
            parse_go_duration("3.002714ms").map(|d| d.as_micros()),
            Some(3002)
        );
        let huge = format!("{}h", "9".repeat(400));
        for bad in [
            "",
            "s",
            "5",
            "5 s",
            "5d",
            "1.2.3s",
            "99999999999999999999h",
            &huge,
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
