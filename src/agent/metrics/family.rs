//! A metric family kept as plain values outside the `prometheus` crate's vectors: its
//! descriptor, and the `MetricFamily` built from the values only when the registry is gathered.
//!
//! The crate's vectors keep, for every series, a descriptor and its label pairs as owned strings
//! and a hash map entry — about 700 bytes a series. Families whose series grow with the estate
//! (per volume, window, schedule or managed copy) are held instead in tables that borrow their
//! label values from the policy, and a [`prometheus::core::Collector`] turns the tables into
//! [`MetricFamily`] records at scrape time through a [`Family`].

use std::collections::HashMap;

use prometheus::core::Desc;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// One family's name, help, type and label names, as the registry checks and the text
/// exposition prints them.
pub struct Family {
    desc: Desc,
    kind: MetricType,
    /// The label positions in label-name order, the order every series lists its labels in
    /// (as the crate's vectors sort them).
    by_name: Vec<usize>,
}

impl Family {
    /// A gauge family; `labels` in the order [`Samples::push`] is given their values.
    pub fn gauge(name: &str, help: &str, labels: &[&str]) -> Family {
        Family::new(name, help, labels, MetricType::GAUGE)
    }

    /// A counter family.
    pub fn counter(name: &str, help: &str, labels: &[&str]) -> Family {
        Family::new(name, help, labels, MetricType::COUNTER)
    }

    /// The names and labels are constants: an invalid one is a bug.
    fn new(name: &str, help: &str, labels: &[&str], kind: MetricType) -> Family {
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

    /// The descriptor the registry checks at registration.
    pub fn desc(&self) -> &Desc {
        &self.desc
    }

    /// An empty set of samples of this family, with room for `series`.
    pub fn samples(&self, series: usize) -> Samples<'_> {
        Samples {
            family: self,
            metrics: Vec::with_capacity(series),
        }
    }
}

/// The series of one family being built for a scrape.
pub struct Samples<'f> {
    family: &'f Family,
    metrics: Vec<Metric>,
}

impl Samples<'_> {
    /// One series: its label values in the family's label order, and its value (an integer
    /// gauge's or a counter's as the crate's vectors export it, `as f64`).
    pub fn push(&mut self, values: &[&str], value: f64) {
        debug_assert_eq!(values.len(), self.family.by_name.len());
        let names = &self.family.desc.variable_labels;
        let labels = self
            .family
            .by_name
            .iter()
            .map(|&i| {
                let mut pair = LabelPair::default();
                pair.set_name(names[i].clone());
                pair.set_value(values[i].to_string());
                pair
            })
            .collect();
        let mut m = Metric::from_label(labels);
        match self.family.kind {
            MetricType::COUNTER => {
                let mut c = Counter::default();
                c.set_value(value);
                m.set_counter(c);
            }
            _ => {
                let mut g = Gauge::default();
                g.set_value(value);
                m.set_gauge(g);
            }
        }
        self.metrics.push(m);
    }

    /// The family record (the registry leaves out a family without series, and sorts them).
    pub fn finish(self) -> MetricFamily {
        let mut mf = MetricFamily::default();
        mf.set_name(self.family.desc.fq_name.clone());
        mf.set_help(self.family.desc.help.clone());
        mf.set_field_type(self.family.kind);
        mf.set_metric(self.metrics);
        mf
    }
}
