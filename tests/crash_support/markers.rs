//! The agent's stage markers (`snapwarden::agent::stage`) as one run wrote them to `agent.log`:
//! `stage entered stage=<stage> id=<n> object=<name>` when it began a piece of work, `stage left
//! stage=<stage> id=<n>` when it finished it. A stage whose `entered` has no `left` when the
//! process was killed is the stage the kill landed in (the log is a file written line by line, so
//! what the process wrote before the kill is there).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use snapwarden::agent::stage::Stage;

/// One marker line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    Entered {
        stage: Stage,
        id: u64,
        object: String,
        /// The line's time stamp (the agent's clock, the test's too).
        at: DateTime<Utc>,
    },
    Left {
        stage: Stage,
        id: u64,
    },
}

impl Marker {
    /// The marker on a log line, if it holds one.
    pub fn parse(line: &str) -> Option<Marker> {
        let (head, rest) = line.split_once(" snapwarden::agent::stage: stage ")?;
        let at = head.split_whitespace().next()?.parse().ok()?;
        let (what, fields) = rest.split_once(' ')?;
        let field = |name: &str| {
            fields
                .split(' ')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.trim_matches('"'))
        };
        let stage = Stage::parse(field("stage")?)?;
        let id = field("id")?.parse().ok()?;
        match what {
            "entered" => Some(Marker::Entered {
                stage,
                id,
                object: field("object").unwrap_or_default().to_string(),
                at,
            }),
            "left" => Some(Marker::Left { stage, id }),
            _ => None,
        }
    }
}

/// One run's markers, read as the log grows.
pub struct RunLog {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// Entered stages by id: stage, object, when.
    entered: BTreeMap<u64, (Stage, String, DateTime<Utc>)>,
    left: BTreeSet<u64>,
}

impl RunLog {
    /// The run whose lines begin at `offset` of `path`.
    pub fn new(path: &Path, offset: u64) -> RunLog {
        RunLog {
            path: path.to_path_buf(),
            offset,
            partial: String::new(),
            entered: BTreeMap::new(),
            left: BTreeSet::new(),
        }
    }

    /// The markers written since the last read, in order.
    pub fn read(&mut self) -> Vec<Marker> {
        let mut f = std::fs::File::open(&self.path).expect("agent log");
        f.seek(SeekFrom::Start(self.offset)).expect("seek");
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).expect("agent log");
        self.offset += u64::try_from(bytes.len()).expect("a length");
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        let mut out = Vec::new();
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            let Some(marker) = Marker::parse(line.trim_end()) else {
                continue;
            };
            match &marker {
                Marker::Entered {
                    stage,
                    id,
                    object,
                    at,
                } => {
                    self.entered.insert(*id, (*stage, object.clone(), *at));
                }
                Marker::Left { id, .. } => {
                    self.left.insert(*id);
                }
            }
            out.push(marker);
        }
        out
    }

    /// The stages entered and not left, each with the objects it was working on.
    pub fn in_flight(&self) -> BTreeMap<Stage, Vec<String>> {
        let mut out: BTreeMap<Stage, Vec<String>> = BTreeMap::new();
        for (id, (stage, object, _)) in &self.entered {
            if !self.left.contains(id) {
                out.entry(*stage).or_default().push(object.clone());
            }
        }
        out
    }

    /// When `stage` was last entered of the times it is in now.
    pub fn entered_last(&self, stage: Stage) -> Option<DateTime<Utc>> {
        self.entered
            .iter()
            .filter(|(id, (s, _, _))| *s == stage && !self.left.contains(id))
            .map(|(_, (_, _, at))| *at)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_lines_parse() {
        let entered = "2026-12-06T13:58:01.641035Z DEBUG snapwarden::agent::stage: stage entered stage=clone_create id=7 object=/vol/v1/snapwarden.w.20261206T135800Z.lun0";
        assert_eq!(
            Marker::parse(entered),
            Some(Marker::Entered {
                stage: Stage::CloneCreate,
                id: 7,
                object: "/vol/v1/snapwarden.w.20261206T135800Z.lun0".into(),
                at: "2026-12-06T13:58:01.641035Z".parse().unwrap(),
            })
        );
        let left = "2026-12-06T13:58:01.9Z DEBUG snapwarden::agent::stage: stage left stage=clone_create id=7";
        assert_eq!(
            Marker::parse(left),
            Some(Marker::Left {
                stage: Stage::CloneCreate,
                id: 7
            })
        );
        assert_eq!(
            Marker::parse("2026 INFO snapwarden::agent::pass: cluster discovered"),
            None
        );
    }
}
