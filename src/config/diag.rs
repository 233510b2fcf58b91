//! Located policy diagnostics: `file:line:column: message` plus an optional hint, collected in bulk.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// One problem in a policy file, phrased so the reader can fix it.
///
/// Invariant: `line` and `column` are 1-based and `column` counts characters, not bytes; both are 0
/// for a problem with the file as a whole (it cannot be read), shown as `file: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// How to fix it, when there is more to say than the message.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Where a value sits in a policy file, kept on the model for the checks that can only be made
/// after loading (a Veeam job looked up on its server at discovery).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Position {
    pub file: PathBuf,
    /// 1-based, as in [`Diagnostic`].
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// A diagnostic at this position.
    pub fn diagnostic(&self, message: impl Into<String>, hint: Option<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message: message.into(),
            hint,
        }
    }
}

/// Every problem found in one load of a policy, sorted by file then position.
///
/// Invariant: never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The text of every file read during one load, so byte spans can become lines and columns.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: Vec<(PathBuf, Arc<str>)>,
}

impl Sources {
    /// Registers a file and returns its index (used by [`Pending::file`]).
    pub(crate) fn add(&mut self, path: PathBuf, text: Arc<str>) -> usize {
        self.files.push((path, text));
        self.files.len() - 1
    }

    pub(crate) fn path(&self, file: usize) -> &PathBuf {
        &self.files[file].0
    }

    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(p, _)| p.clone()).collect()
    }

    /// 1-based line and character column of byte `offset` in `file` (clamped to the text).
    pub(crate) fn line_col(&self, file: usize, offset: usize) -> (usize, usize) {
        let text = &self.files[file].1;
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    /// `file:line` of a span, or just `line N` when it is in `from_file` (for "first defined at").
    pub(crate) fn describe(&self, file: usize, span: &Range<usize>, from_file: usize) -> String {
        let (line, _) = self.line_col(file, span.start);
        if file == from_file {
            format!("line {line}")
        } else {
            format!("{}:{line}", self.path(file).display())
        }
    }
}

/// A diagnostic whose location is still a byte span in one of the [`Sources`] (`None`: the file as
/// a whole).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub file: usize,
    pub span: Option<Range<usize>>,
    pub message: String,
    pub hint: Option<String>,
}

impl Pending {
    pub(crate) fn resolve(&self, sources: &Sources) -> Diagnostic {
        let (line, column) = match &self.span {
            Some(span) => sources.line_col(self.file, span.start),
            None => (0, 0),
        };
        Diagnostic {
            file: sources.path(self.file).clone(),
            line,
            column,
            message: self.message.clone(),
            hint: self.hint.clone(),
        }
    }
}

/// The sources of one load plus the diagnostics found so far, in any order.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    pub(crate) sources: Sources,
    pub(crate) diags: Vec<Pending>,
}

impl Collector {
    pub(crate) fn error(
        &mut self,
        file: usize,
        span: Range<usize>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.push(Pending {
            file,
            span: Some(span),
            message: message.into(),
            hint,
        });
    }

    /// The position of byte `offset` of `file`, to keep on the model.
    pub(crate) fn position(&self, file: usize, offset: usize) -> Position {
        let (line, column) = self.sources.line_col(file, offset);
        Position {
            file: self.sources.path(file).clone(),
            line,
            column,
        }
    }

    /// A problem with `file` as a whole, such as an OS error reading it.
    pub(crate) fn file_error(
        &mut self,
        file: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.diags.push(Pending {
            file,
            span: None,
            message: message.into(),
            hint,
        });
    }

    /// Every diagnostic, located and sorted by file then position.
    pub(crate) fn finish(self) -> Diagnostics {
        let mut pending = self.diags;
        pending.sort_by_key(|p| (p.file, p.span.as_ref().map(|s| s.start)));
        Diagnostics(pending.iter().map(|p| p.resolve(&self.sources)).collect())
    }
}

/// Shorthand for the `hint` argument of [`Collector::error`].
pub(crate) fn hint(text: impl Into<String>) -> Option<String> {
    Some(text.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_hint() {
        let mut d = Diagnostic {
            file: PathBuf::from("policy.toml"),
            line: 3,
            column: 7,
            message: "unknown key `x`".into(),
            hint: None,
        };
        assert_eq!(d.to_string(), "policy.toml:3:7: unknown key `x`");
        d.hint = Some("remove it".into());
        assert_eq!(
            d.to_string(),
            "policy.toml:3:7: unknown key `x`\n  hint: remove it"
        );
        let all = Diagnostics(vec![d.clone(), d]);
        assert_eq!(all.to_string().lines().count(), 4);
    }

    #[test]
    fn a_whole_file_problem_has_no_position() {
        let d = Diagnostic {
            file: PathBuf::from("x.toml"),
            line: 0,
            column: 0,
            message: "cannot read the policy file: No such file".into(),
            hint: None,
        };
        assert_eq!(
            d.to_string(),
            "x.toml: cannot read the policy file: No such file"
        );
    }

    #[test]
    fn line_col_counts_characters_from_one() {
        let mut s = Sources::default();
        let f = s.add("a.toml".into(), Arc::from("ab\nçd = 1\n"));
        assert_eq!(s.line_col(f, 0), (1, 1));
        assert_eq!(s.line_col(f, 3), (2, 1));
        // `d` follows the two-byte `ç`.
        assert_eq!(s.line_col(f, 5), (2, 2));
        assert_eq!(s.line_col(f, 999), (3, 1));
    }
}
