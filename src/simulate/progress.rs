//! The progress line `simulate` draws on a terminal: which run, days simulated of the total, and
//! the rate in simulated days per wall-clock second. Pure formatting; the command line decides
//! whether to draw (stderr a terminal, table output) and reads the wall clock.

use std::time::Duration;

/// Cells of the bar between the brackets.
pub const BAR_WIDTH: usize = 24;

/// One progress line, without the leading carriage return:
/// `coordinated    [############------------]  15/30 days   7.5 days/s`.
///
/// `done` is clamped to `0..=total`; the rate is `done / elapsed` (`-` before any time passed).
pub fn line(mode: &str, done: i64, total: i64, elapsed: Duration) -> String {
    let total = total.max(1);
    let done = done.clamp(0, total);
    // `done <= total`, both small (at most `MAX_DAYS`): the product cannot overflow.
    let filled = usize::try_from(done.saturating_mul(BAR_WIDTH as i64) / total).unwrap_or(0);
    let filled = filled.min(BAR_WIDTH);
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!("{:5.1} days/s", done as f64 / secs)
    } else {
        "    - days/s".to_string()
    };
    let digits = total.to_string().len();
    format!(
        "{mode:<13}  [{}{}]  {done:>digits$}/{total} days  {rate}",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_the_run_the_days_and_the_rate() {
        // 15 of 30 days: half of 24 cells; 15 days in 2 s is 7.5 days/s.
        assert_eq!(
            line("coordinated", 15, 30, Duration::from_secs(2)),
            "coordinated    [############------------]  15/30 days    7.5 days/s"
        );
        // One of 366 days: 24/366 < 1 cell; padded to three digits.
        assert_eq!(
            line("uncoordinated", 1, 366, Duration::from_millis(250)),
            "uncoordinated  [------------------------]    1/366 days    4.0 days/s"
        );
        // Done, and no time measured yet.
        assert_eq!(
            line("coordinated", 7, 7, Duration::ZERO),
            "coordinated    [########################]  7/7 days      - days/s"
        );
    }

    #[test]
    fn out_of_range_counts_are_clamped() {
        assert_eq!(
            line("x", 40, 30, Duration::from_secs(1)),
            line("x", 30, 30, Duration::from_secs(1))
        );
        assert!(line("x", -5, 30, Duration::from_secs(1)).contains("[------------------------]"));
        assert!(line("x", 0, 0, Duration::from_secs(1)).contains("0/1 days"));
    }
}
