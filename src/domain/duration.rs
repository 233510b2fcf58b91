//! Durations in the policy file (`"90s"`, `"1h30m"`, `"PT30M"`) and ONTAP's ISO-8601 interval form.
//!
//! Durations have whole-second resolution: ONTAP interval schedules and every policy duration are
//! counted in seconds, so neither parser accepts fractions and the formatter drops sub-seconds.

use chrono::TimeDelta;

const HUMAN_EXAMPLE: &str =
    "write a number and a unit (w, d, h, m, s) such as \"90s\", \"5m\", \"1h30m\", \"7d\", \
     or an ISO-8601 duration such as \"PT30M\"";

/// Parses a policy duration: human form (`"90s"`, `"5m"`, `"1h30m"`, `"7d"`, `"2w"`: each unit at
/// most once, largest first) or ISO-8601 (anything starting with `P`, see
/// [`parse_iso8601_duration`]). The error says what is wrong and shows an example.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let s = text.trim();
    if s.starts_with('P') {
        return parse_iso8601_duration(s);
    }
    if s.is_empty() {
        return Err(format!("empty duration; {HUMAN_EXAMPLE}"));
    }
    // Units largest first, with their length in seconds.
    const UNITS: [(char, i64); 5] = [
        ('w', 7 * 86_400),
        ('d', 86_400),
        ('h', 3_600),
        ('m', 60),
        ('s', 1),
    ];
    let mut total: i64 = 0;
    let mut next_unit = 0; // index into UNITS: a unit must come after the previous one
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("\"{text}\" is not a duration; {HUMAN_EXAMPLE}"));
        }
        let (number, tail) = rest.split_at(digits);
        let Some(unit) = tail.chars().next() else {
            return Err(format!(
                "\"{text}\" has no unit after {number}; {HUMAN_EXAMPLE}"
            ));
        };
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "\"{text}\" uses unknown unit '{unit}'; {HUMAN_EXAMPLE}"
            ));
        };
        if pos < next_unit {
            return Err(format!(
                "\"{text}\" repeats a unit or lists them out of order; write the largest unit \
                 first, for example \"1h30m\""
            ));
        }
        next_unit = pos + 1;
        let value: i64 = number
            .parse()
            .map_err(|_| format!("\"{text}\" is too long a duration"))?;
        total = value
            .checked_mul(UNITS[pos].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("\"{text}\" is too long a duration"))?;
        rest = &tail[unit.len_utf8()..];
    }
    TimeDelta::try_seconds(total).ok_or_else(|| format!("\"{text}\" is too long a duration"))
}

/// Parses an ISO-8601 duration as ONTAP uses it for interval schedules: `P[nW][nD][T[nH][nM][nS]]`
/// with whole numbers, for example `PT7M30S`, `P1D`, `P1W`, `P2DT5M`. Years and months are refused
/// (their length varies); at least one component is required.
pub fn parse_iso8601_duration(text: &str) -> Result<TimeDelta, String> {
    const EXAMPLE: &str = "for example \"PT30M\", \"PT7M30S\", \"P1D\", \"P1W\" or \"P2DT5M\"";
    let Some(body) = text.strip_prefix('P') else {
        return Err(format!(
            "\"{text}\" is not an ISO-8601 duration: it must start with 'P'; {EXAMPLE}"
        ));
    };
    let (date_part, time_part) = match body.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return Err(format!(
                    "\"{text}\" has a 'T' with no hours, minutes or seconds after it; {EXAMPLE}"
                ));
            }
            (d, Some(t))
        }
        None => (body, None),
    };
    let mut total: i64 = 0;
    let mut components = 0;
    let mut add = |part: &str, units: &[(char, i64)], in_time: bool| -> Result<(), String> {
        let mut next_unit = 0;
        let mut rest = part;
        while !rest.is_empty() {
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            let (number, tail) = rest.split_at(digits);
            let unit = tail.chars().next();
            if digits == 0 || unit.is_none() {
                return Err(format!(
                    "\"{text}\" is not an ISO-8601 duration (whole numbers, each followed by a \
                     unit); {EXAMPLE}"
                ));
            }
            let unit = unit.unwrap_or_default();
            if unit == '.' || unit == ',' {
                return Err(format!(
                    "\"{text}\" has a fraction; durations take whole seconds; {EXAMPLE}"
                ));
            }
            let Some(pos) = units.iter().position(|(u, _)| *u == unit) else {
                let why = match (unit, in_time) {
                    ('Y', false) | ('M', false) => {
                        "years and months have no fixed length; use weeks or days".to_string()
                    }
                    _ => format!("'{unit}' is not a unit here"),
                };
                return Err(format!("\"{text}\": {why}; {EXAMPLE}"));
            };
            if pos < next_unit {
                return Err(format!(
                    "\"{text}\" repeats a unit or lists them out of order; {EXAMPLE}"
                ));
            }
            next_unit = pos + 1;
            let value: i64 = number
                .parse()
                .map_err(|_| format!("\"{text}\" is too long a duration"))?;
            total = value
                .checked_mul(units[pos].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("\"{text}\" is too long a duration"))?;
            components += 1;
            rest = &tail[unit.len_utf8()..];
        }
        Ok(())
    };
    add(date_part, &[('W', 7 * 86_400), ('D', 86_400)], false)?;
    if let Some(t) = time_part {
        add(t, &[('H', 3_600), ('M', 60), ('S', 1)], true)?;
    }
    if components == 0 {
        return Err(format!("\"{text}\" has no components; {EXAMPLE}"));
    }
    TimeDelta::try_seconds(total).ok_or_else(|| format!("\"{text}\" is too long a duration"))
}

/// Formats a duration the way ONTAP writes intervals: days, then `T` hours/minutes/seconds, zero
/// components omitted (`P1DT2H`, `PT30M`, `PT0S`). Sub-seconds are dropped; a negative duration
/// gets a leading `-` (ISO-8601 has no sign; [`parse_iso8601_duration`] refuses it).
pub fn format_iso8601_duration(d: TimeDelta) -> String {
    let secs = d.num_seconds();
    let sign = if secs < 0 { "-" } else { "" };
    let secs = secs.unsigned_abs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (hours, rem) = (rem / 3_600, rem % 3_600);
    let (minutes, seconds) = (rem / 60, rem % 60);
    let mut out = format!("{sign}P");
    if days > 0 {
        out += &format!("{days}D");
    }
    if hours > 0 || minutes > 0 || seconds > 0 || days == 0 {
        out.push('T');
        if hours > 0 {
            out += &format!("{hours}H");
        }
        if minutes > 0 {
            out += &format!("{minutes}M");
        }
        if seconds > 0 || (days == 0 && hours == 0 && minutes == 0) {
            out += &format!("{seconds}S");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    #[test]
    fn human_durations() {
        for (text, want) in [
            ("90s", 90),
            ("5m", 300),
            ("1h30m", 5_400),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1d2h3m4s", 93_784),
            ("0s", 0),
            (" 40m ", 2_400),
        ] {
            assert_eq!(parse_duration(text), Ok(secs(want)), "{text}");
        }
    }

    #[test]
    fn iso_durations() {
        for (text, want) in [
            ("PT7M30S", 450),
            ("P1D", 86_400),
            ("P1W", 604_800),
            ("P2DT5M", 173_100),
            ("PT30M", 1_800),
            ("P1W1D", 691_200),
        ] {
            assert_eq!(parse_iso8601_duration(text), Ok(secs(want)), "{text}");
            assert_eq!(parse_duration(text), Ok(secs(want)), "{text}");
        }
    }

    #[test]
    fn bad_durations_explain_with_an_example() {
        for (text, needle) in [
            ("", "empty duration"),
            ("90", "no unit after 90"),
            ("5 minutes", "unknown unit ' '"),
            ("5x", "unknown unit 'x'"),
            ("30m1h", "largest unit first"),
            ("1m1m", "repeats a unit"),
            ("h", "is not a duration"),
            ("99999999999999999999w", "too long"),
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
            if !needle.contains("too long") {
                assert!(err.contains("\"1h30m\""), "{text}: {err}");
            }
        }
        for (text, needle) in [
            ("P", "no components"),
            ("PT", "no hours"),
            ("P1Y", "years and months"),
            ("P1M", "years and months"),
            ("PT1.5S", "whole seconds"),
            ("PTS", "whole numbers"),
            ("P1H", "'H' is not a unit"),
            ("PT1S1M", "out of order"),
            ("1D", "must start with 'P'"),
        ] {
            let err = parse_iso8601_duration(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                err.contains("PT7M30S") || needle.contains("too long"),
                "{err}"
            );
        }
    }

    #[test]
    fn format_round_trips() {
        for (s, want) in [
            (0, "PT0S"),
            (450, "PT7M30S"),
            (86_400, "P1D"),
            (604_800, "P7D"),
            (173_100, "P2DT5M"),
            (3_600, "PT1H"),
            (90_061, "P1DT1H1M1S"),
        ] {
            assert_eq!(format_iso8601_duration(secs(s)), want);
            assert_eq!(parse_iso8601_duration(want), Ok(secs(s)));
        }
        assert_eq!(format_iso8601_duration(secs(-60)), "-PT1M");
        assert_eq!(
            format_iso8601_duration(TimeDelta::milliseconds(1_500)),
            "PT1S"
        );
    }

    proptest::proptest! {
        #[test]
        fn iso_format_parses_back(seconds in 0i64..400 * 86_400 * 10) {
            let d = secs(seconds);
            proptest::prop_assert_eq!(parse_iso8601_duration(&format_iso8601_duration(d)), Ok(d));
        }

        #[test]
        fn human_components_add_up(w in 0i64..10, d in 0i64..10, h in 0i64..30, m in 0i64..90, s in 0i64..90) {
            let text = format!("{w}w{d}d{h}h{m}m{s}s");
            let want = secs((((w * 7 + d) * 24 + h) * 60 + m) * 60 + s);
            proptest::prop_assert_eq!(parse_duration(&text), Ok(want));
        }
    }
}
