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
