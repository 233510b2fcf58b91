//! A metric family kept as plain values outside the `prometheus` crate's vectors: its
//! descriptor, and its text written straight from the values into the exposition at scrape
//! time, as the crate's registry and `TextEncoder` would write the same series.
//!
//! The crate's vectors keep, for every series, a descriptor and its label pairs as owned strings
//! and a hash map entry — about 700 bytes a series — and even a custom collector makes a
//! `MetricFamily` record of every series at every scrape. Families whose series grow with the
//! estate (per volume, window, schedule or managed copy) are held instead in tables that borrow
//! their label values from the policy, and written as text from the tables: a scrape allocates
//! the text and, for the family being written, one small handle per series.
//!
//! The text is the crate's to the byte (`prometheus` 0.14, `TextEncoder` over
//! `Registry::gather`; `tests/metrics_oracle.rs` holds it to that): a family without series is
//! left out; `# HELP` (when the help is not empty, with `\` and a line feed escaped) and
//! `# TYPE`; then one line per series, sorted by label values compared in label-name order (a
//! stable sort), the labels in name order, each value with `\`, `"` and a line feed escaped; the
//! value as Rust prints an `f64`; no timestamp.

use std::collections::HashMap;
use std::fmt::Write as _;

use prometheus::core::Desc;

/// The types of the families held as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

/// One family's name, help, type and label names, as the text exposition prints them.
pub struct Family {
    desc: Desc,
    kind: Kind,
    /// The label positions in label-name order, the order every series lists its labels in
    /// (as the crate's vectors sort them).
    by_name: Vec<usize>,
}

/// One series of a family, as the table that writes it finds it again: a row of the table and
/// which of the row's series (a state, kind, result or schedule; 0 when it has one).
#[derive(Debug, Clone, Copy)]
pub struct Series {
    pub row: usize,
    pub of: usize,
}

impl Series {
    pub fn new(row: usize, of: usize) -> Series {
        Series { row, of }
    }

    /// The series of a family, in room for `most` of them: a list collected from a filter, or
    /// pushed to, would take up to twice the room it needs.
    pub fn list(most: usize, series: impl Iterator<Item = Series>) -> Vec<Series> {
        let mut list = Vec::with_capacity(most);
        list.extend(series);
        list
    }
}

/// A family to write into the exposition: its name (the exposition lists families in name
/// order) and how its text is written.
pub struct Written<'a> {
    pub name: &'a str,
    pub write: Box<dyn FnOnce(&mut Text) + 'a>,
}

impl<'a> Written<'a> {
    pub fn new(name: &'a str, write: impl FnOnce(&mut Text) + 'a) -> Written<'a> {
        Written {
            name,
            write: Box::new(write),
        }
    }
}

/// The exposition being written. Its room grows by an eighth of the text at a time (or by what
/// a line needs, when more), not twice over as a `String` grows on its own, so that a scrape
/// holds little more than its text.
pub struct Text(String);

/// Room for a value: Rust prints an `f64` in at most this many bytes but for magnitudes beyond
/// 10^20 (the text is the same then; it may grow twice over).
const VALUE_ROOM: usize = 24;

impl Text {
    /// An empty text with room for `bytes`.
    pub fn with_room(bytes: usize) -> Text {
        Text(String::with_capacity(bytes))
    }

    /// Makes room for `bytes` more.
    pub fn room(&mut self, bytes: usize) {
        let free = self.0.capacity() - self.0.len();
        if free < bytes {
            self.0.reserve_exact(bytes.max(self.0.len() / 8));
        }
    }

    pub fn push_str(&mut self, s: &str) {
        self.room(s.len());
        self.0.push_str(s);
    }

    /// The text, its room cut to its length.
    pub fn into_string(self) -> String {
        let mut text = self.0;
        text.shrink_to_fit();
        text
    }
}

impl Family {
    /// A gauge family; `labels` in the order the tables give their values.
    pub fn gauge(name: &str, help: &str, labels: &[&str]) -> Family {
        Family::new(name, help, labels, Kind::Gauge)
    }

    /// A counter family.
    pub fn counter(name: &str, help: &str, labels: &[&str]) -> Family {
        Family::new(name, help, labels, Kind::Counter)
    }

    /// The names and labels are constants: an invalid one is a bug.
    fn new(name: &str, help: &str, labels: &[&str], kind: Kind) -> Family {
        let desc = Desc::new(
            name.to_string(),
            help.to_string(),
            labels.iter().map(|l| l.to_string()).collect(),
            HashMap::new(),
        )
        .expect("metric names and labels are valid");
        let mut by_name: Vec<usize> = (0..labels.len()).collect();
        by_name.sort_by_key(|&i| labels[i]);
        Family {
            desc,
            kind,
            by_name,
        }
    }

    pub fn name(&self) -> &str {
        &self.desc.fq_name
    }

    /// Appends the family's text: its header and `series` in the exposition's order, each with
    /// its label values (in the order of the family's labels) and its value; nothing when there
    /// are none. `series` come in the order the table lists them, which is their `(row, of)`
    /// order: series of the same labels (none, in a table that keeps its invariants) stay in
    /// that order, as the registry's stable sort keeps them, without the room a stable sort
    /// takes.
    pub fn write<'v, const N: usize>(
        &self,
        text: &mut Text,
        mut series: Vec<Series>,
        labels: impl Fn(Series) -> [&'v str; N],
        value: impl Fn(Series) -> f64,
    ) {
        if series.is_empty() {
            return;
        }
        debug_assert_eq!(N, self.by_name.len());
        let listed = |s: &Series| (s.row, s.of);
        debug_assert!(series.is_sorted_by_key(listed));
        let in_name_order = |l: [&'v str; N]| self.by_name.iter().map(move |&i| l[i]);
        series.sort_unstable_by(|a, b| {
            let by_labels = in_name_order(labels(*a)).cmp(in_name_order(labels(*b)));
            by_labels.then_with(|| listed(a).cmp(&listed(b)))
        });
        let name = self.name();
        let names = &self.desc.variable_labels;
        text.room(2 * (name.len() + self.desc.help.len()) + 32);
        let out = &mut text.0;
        if !self.desc.help.is_empty() {
            out.push_str("# HELP ");
            out.push_str(name);
            out.push(' ');
            escape(out, &self.desc.help, false);
            out.push('\n');
        }
        out.push_str("# TYPE ");
        out.push_str(name);
        out.push_str(match self.kind {
            Kind::Gauge => " gauge\n",
            Kind::Counter => " counter\n",
        });
        for s in series {
            let values = labels(s);
            // Every label value escaped at worst twice its length.
            let pairs = (0..N).map(|i| names[i].len() + 2 * values[i].len() + 4);
            text.room(name.len() + pairs.sum::<usize>() + 2 + VALUE_ROOM);
            let out = &mut text.0;
            out.push_str(name);
            let mut separator = '{';
            for &i in &self.by_name {
                out.push(separator);
                out.push_str(&names[i]);
                out.push_str("=\"");
                escape(out, values[i], true);
                out.push('"');
                separator = ',';
            }
            if N > 0 {
                out.push('}');
            }
            // Writing to a `String` cannot fail.
            let _ = writeln!(out, " {}", value(s));
        }
    }
}

/// Appends `text` with `\` and line feeds escaped, and `"` too in a label value.
fn escape(out: &mut String, text: &str, quote: bool) {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    if !text.contains(special) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each family's text against the crate's own: the same series in a `prometheus` vector,
    //! gathered by a registry and written by its `TextEncoder`.

    use prometheus::{CounterVec, GaugeVec, Opts, Registry, TextEncoder};

    use super::*;

    /// Label values that need escaping, and some that sort before and after them.
    const VALUES: [&str; 9] = [
        "plain",
        "a\"quote",
        "back\\slash",
        "line\nfeed",
        "\"\\\n",
        "",
        "é-accent",
        "Z",
        "end\\",
    ];

    /// A help with every character the HELP line escapes, and a quote it does not.
    const HELP: &str = "A help with a \\ backslash,\na line feed and \"quotes\".";

    /// The crate's text for `series` in a vector of `labels` (`gauge` or counter).
    fn crate_text(gauge: bool, labels: &[&str], series: &[([&str; 3], f64)]) -> String {
        let registry = Registry::new();
        let opts = Opts::new("snapwarden_test", HELP);
        if gauge {
            let v = GaugeVec::new(opts, labels).unwrap();
            registry.register(Box::new(v.clone())).unwrap();
            for (l, value) in series {
                v.with_label_values(l).set(*value);
            }
        } else {
            let v = CounterVec::new(opts, labels).unwrap();
            registry.register(Box::new(v.clone())).unwrap();
            for (l, value) in series {
                v.with_label_values(l).inc_by(*value);
            }
        }
        TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
    }

    /// The family's text for the same series, given in the order listed.
    fn family_text(f: &Family, series: &[([&str; 3], f64)]) -> String {
        let mut text = Text::with_room(0);
        let handles = (0..series.len()).map(|i| Series::new(i, 0)).collect();
        f.write(&mut text, handles, |s| series[s.row].0, |s| series[s.row].1);
        text.into_string()
    }

    /// Series over every pair of the values, in an order unlike the sorted one.
    fn series(values: &[f64]) -> Vec<([&'static str; 3], f64)> {
        let mut series = Vec::new();
        for (i, a) in VALUES.iter().enumerate().rev() {
            for (j, b) in VALUES.iter().enumerate() {
                let value = values[(i * VALUES.len() + j) % values.len()];
                series.push(([b, "svm1", a], value));
            }
        }
        series
    }

    #[test]
    fn a_gauge_family_is_the_crate_encoders_text_to_the_byte() {
        // Labels not in name order: the text lists them, and sorts the series, by name.
        let labels = ["volume", "svm", "cluster"];
        let values = [
            0.0,
            -0.0,
            1.0,
            -3.0,
            0.1,
            1.5e-7,
            1_734_567_890.125,
            1e21,
            9_007_199_254_740_993.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
        ];
        let series = series(&values);
        let f = Family::gauge("snapwarden_test", HELP, &labels);
        let want = crate_text(true, &labels, &series);
        assert!(want.contains(r#"volume="a\"quote""#), "{want}");
        assert!(want.contains(r#"cluster="line\nfeed""#), "{want}");
        assert!(want.contains(r"back\\slash"), "{want}");
        assert_eq!(family_text(&f, &series), want);
    }

    #[test]
    fn a_counter_family_is_the_crate_encoders_text_to_the_byte() {
        let labels = ["cluster", "svm", "volume"];
        let values = [0.0, 1.0, 42.0, 1e16, u64::MAX as f64];
        let series = series(&values);
        let f = Family::counter("snapwarden_test", HELP, &labels);
        assert_eq!(
            family_text(&f, &series),
            crate_text(false, &labels, &series)
        );
    }

    #[test]
    fn a_family_without_series_writes_nothing_as_the_registry_leaves_it_out() {
        let labels = ["cluster", "svm", "volume"];
        let f = Family::gauge("snapwarden_test", HELP, &labels);
        assert_eq!(crate_text(true, &labels, &[]), "");
        assert_eq!(family_text(&f, &[]), "");
    }

    #[test]
    fn the_text_grows_by_an_eighth_not_twice_over() {
        let f = Family::gauge("snapwarden_test", HELP, &["cluster", "svm", "volume"]);
        let names: Vec<String> = (0..20_000).map(|i| format!("vol{i:05}")).collect();
        let mut text = Text::with_room(0);
        let handles = (0..names.len()).map(|i| Series::new(i, 0)).collect();
        let labels = |s: Series| ["c", "s", names[s.row].as_str()];
        f.write(&mut text, handles, labels, |s| s.row as f64);
        let (len, room) = (text.0.len(), text.0.capacity());
        assert!(len > 1_000_000, "{len} bytes");
        assert!(
            room <= len + len / 8 + 256,
            "{room} bytes of room for {len}"
        );
        let text = text.into_string();
        assert_eq!(text.capacity(), text.len());
    }
}
