//! The shape of the crate, held: the top-level modules of `src/` import each other without a
//! circle, no source file is over 800 lines and no function over 120 lines outside tests.
//!
//! Read from the source text: every `crate::X`, `use crate::{X, …}` and `super::` chain that
//! climbs to the crate root, outside comments and string literals, is an edge from the file's
//! top-level module (`src/<name>/…` or `src/<name>.rs`) to `X`. Test code counts as code for the
//! edges (it is compiled with the crate); for the sizes, test files (`tests.rs`, `*_tests.rs`,
//! files their parent declares under `#[cfg(test)]`) and the part of a file from its
//! `#[cfg(test)] mod … {` on are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest source file, in lines (its non-test part).
const MAX_FILE_LINES: usize = 800;
/// Longest function, in lines from `fn` to its closing brace.
const MAX_FN_LINES: usize = 120;

/// Files allowed over [`MAX_FILE_LINES`]: none. An entry would need a reason, and comes off once
/// its file fits (this test says when).
const FILES_ALLOWED_LONGER: &[&str] = &[];

/// Functions (`file:name`) allowed over [`MAX_FN_LINES`]: table set-ups only, each with its
/// reason. Remove an entry once it fits (this test says when).
const FNS_ALLOWED_LONGER: &[&str] = &[
    // The registry: one declaration per metric family (a table set-up).
    "src/agent/metrics/mod.rs:new",
];

/// A source file: its path from the crate root, its text with comments and string literals
/// blanked (line structure kept), and its module path (`["agent", "http"]`).
struct Source {
    path: String,
    code: String,
    module: Vec<String>,
}

fn crate_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/agent/http.rs` → `["agent", "http"]`; `src/agent/mod.rs` → `["agent"]`;
/// `src/lib.rs` → `[]`.
fn module_path(rel: &str) -> Vec<String> {
    let inner = rel.strip_prefix("src/").expect("under src/");
    let inner = inner.strip_suffix(".rs").expect("a .rs file");
    let mut parts: Vec<String> = inner.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn sources() -> Vec<Source> {
    let root = crate_root();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
            let path = p
                .strip_prefix(&root)
                .expect("under the crate")
                .to_string_lossy()
                .replace('\\', "/");
            Source {
                module: module_path(&path),
                code: blank_comments_and_strings(&text),
                path,
            }
        })
        .collect()
}

/// The text with every comment and string or char literal replaced by spaces; newlines stay, so
/// line numbers still hold.
fn blank_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, ch: char| out.push(if ch == '\n' { '\n' } else { ' ' });
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, c[i]);
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_len(&c[i..]) {
            for &ch in &c[i..i + len] {
                blank(&mut out, ch);
            }
            i += len;
        } else if c[i] == '"' {
            blank(&mut out, c[i]);
            i += 1;
            while i < c.len() && c[i] != '"' {
                let step = if c[i] == '\\' { 2 } else { 1 };
                for &ch in c.iter().skip(i).take(step) {
                    blank(&mut out, ch);
                }
                i += step;
            }
            if i < c.len() {
                blank(&mut out, c[i]);
                i += 1;
            }
        } else if let Some(len) = char_literal_len(&c[i..]) {
            out.extend(std::iter::repeat_n(' ', len));
            i += len;
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// Length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) starting here, if one does.
fn raw_string_len(c: &[char]) -> Option<usize> {
    let mut i = usize::from(c.first() == Some(&'b'));
    if c.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = c[i..].iter().take_while(|&&ch| ch == '#').count();
    i += hashes;
    if c.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < c.len() {
        if c[i] == '"'
            && c[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(c.len())
}

/// Length of a char literal (`'a'`, `'\n'`, `'"'`, `'\u{1F600}'`) starting here; `None` for a
/// lifetime or a label.
fn char_literal_len(c: &[char]) -> Option<usize> {
    if c.first() != Some(&'\'') {
        return None;
    }
    if c.get(1) == Some(&'\\') {
        let end = c.iter().skip(2).position(|&ch| ch == '\'')?;
        return Some(end + 3);
    }
    (c.get(2) == Some(&'\'')).then_some(3)
}

/// The identifier that starts at `i`, if any.
fn ident_at(c: &[char], i: usize) -> Option<String> {
    let first = *c.get(i)?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    Some(
        c[i..]
            .iter()
            .take_while(|ch| ch.is_alphanumeric() || **ch == '_')
            .collect(),
    )
}

fn is_ident_char(ch: Option<&char>) -> bool {
    ch.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

fn skip_space(c: &[char], mut i: usize) -> usize {
    while c.get(i).is_some_and(|ch| ch.is_whitespace()) {
        i += 1;
    }
    i
}

fn starts_with(c: &[char], i: usize, word: &str) -> bool {
    word.chars()
        .enumerate()
        .all(|(k, w)| c.get(i + k) == Some(&w))
}

/// One reference from a file to a top-level module: the module and the line.
struct Reference {
    to: String,
    line: usize,
}

/// Every top-level module a file names: `crate::X`, `crate::{X, …}`, and `super::` chains that
/// climb to the crate root (counted from the file's module plus the inline `mod x { … }` around
/// them).
fn references(src: &Source) -> Vec<Reference> {
    let c: Vec<char> = src.code.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut depth = 0usize;
    // Inline modules: the brace depth their body opened at.
    let mut inline: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '\n' => line += 1,
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        let word_start = !is_ident_char(i.checked_sub(1).and_then(|p| c.get(p)));
        if word_start && starts_with(&c, i, "mod") && !is_ident_char(c.get(i + 3)) {
            let j = skip_space(&c, i + 3);
            if let Some(name) = ident_at(&c, j) {
                if c.get(skip_space(&c, j + name.len())) == Some(&'{') {
                    inline.push(depth);
                }
            }
        }
        if word_start && starts_with(&c, i, "crate::") {
            out.extend(
                after_root(&c, i + "crate::".len())
                    .into_iter()
                    .map(|to| Reference { to, line }),
            );
        }
        if word_start && starts_with(&c, i, "super::") {
            let mut j = i;
            let mut ups = 0;
            while starts_with(&c, j, "super::") {
                ups += 1;
                j = skip_space(&c, j + "super::".len());
            }
            if ups >= src.module.len() + inline.len() {
                out.extend(
                    after_root(&c, j)
                        .into_iter()
                        .map(|to| Reference { to, line }),
                );
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The first segments of the path(s) after `crate::` at `i`: one identifier, or each item of a
/// `{ … }` group.
fn after_root(c: &[char], i: usize) -> Vec<String> {
    let i = skip_space(c, i);
    if c.get(i) != Some(&'{') {
        return ident_at(c, i).into_iter().collect();
    }
    let mut out = Vec::new();
    let mut depth = 0;
    let mut expect_item = true;
    let mut j = i;
    while j < c.len() {
        match c[j] {
            '{' => {
                depth += 1;
                expect_item = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect_item = true,
            ch if ch.is_whitespace() => {}
            _ if expect_item && depth == 1 => {
                if let Some(name) = ident_at(c, j) {
                    j += name.len();
                    out.push(name);
                    expect_item = false;
                    continue;
                }
                expect_item = false;
            }
            _ => {}
        }
        j += 1;
    }
    out
}

/// The top-level modules: `src/<name>.rs` and `src/<name>/` (not `lib.rs`, `main.rs`).
fn top_level_modules(sources: &[Source]) -> BTreeSet<String> {
    sources
        .iter()
        .filter_map(|s| s.module.first().cloned())
        .collect()
}

/// Edges between top-level modules, each with every `file:line` that makes it.
type Edges = BTreeMap<(String, String), Vec<String>>;

fn edges(sources: &[Source]) -> Edges {
    let modules = top_level_modules(sources);
    let mut out = Edges::new();
    for s in sources {
        let Some(from) = s.module.first() else {
            continue;
        };
        for r in references(s) {
            if modules.contains(&r.to) && &r.to != from {
                out.entry((from.clone(), r.to))
                    .or_default()
                    .push(format!("{}:{}", s.path, r.line));
            }
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn circles(modules: &BTreeSet<String>, edges: &Edges) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.next.get(v).cloned().unwrap_or_default() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for (from, to) in edges.keys() {
        t.next.entry(from.as_str()).or_default().push(to.as_str());
    }
    for m in modules {
        if !t.index.contains_key(m.as_str()) {
            t.visit(m.as_str());
        }
    }
    t.found
}

#[test]
fn the_top_level_modules_import_each_other_without_a_circle() {
    let sources = sources();
    let modules = top_level_modules(&sources);
    let edges = edges(&sources);
    let found = circles(&modules, &edges);
    let mut report = String::new();
    for circle in &found {
        report.push_str(&format!("circle: {}\n", circle.join(" ↔ ")));
        for ((from, to), at) in &edges {
            if circle.contains(from) && circle.contains(to) {
                report.push_str(&format!("  {from} → {to}: {}\n", at.join(", ")));
            }
        }
    }
    assert!(found.is_empty(), "top-level modules in a circle:\n{report}");
}

#[test]
fn the_reader_sees_paths_through_braces_and_super_chains_but_not_comments() {
    let src = Source {
        path: "src/a/b.rs".into(),
        code: blank_comments_and_strings(
            "use crate::{x::Y, z};\n// crate::commented\nlet s = \"crate::quoted\";\nmod t {\n    use super::super::v;\n    use super::super::super::w;\n}\nuse super::super::u;\nlet c = '\"'; use crate::after_char;\n",
        ),
        module: module_path("src/a/b.rs"),
    };
    let found: Vec<(String, usize)> = references(&src)
        .into_iter()
        .map(|r| (r.to, r.line))
        .collect();
    assert_eq!(
        found,
        [
            ("x".to_string(), 1),
            ("z".to_string(), 1),
            ("w".to_string(), 6),
            ("u".to_string(), 8),
            ("after_char".to_string(), 9),
        ]
    );
}

/// The test files: named `tests.rs` or `*_tests.rs`, or declared by their parent under
/// `#[cfg(test)]` (`#[cfg(test)] mod x;`).
fn test_files(sources: &[Source]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = sources
        .iter()
        .filter(|s| s.path.ends_with("/tests.rs") || s.path.ends_with("_tests.rs"))
        .map(|s| s.path.clone())
        .collect();
    for s in sources {
        let lines: Vec<&str> = s.code.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            let [attr, item] = pair else { continue };
            if *attr != "#[cfg(test)]" {
                continue;
            }
            let Some(name) = item
                .strip_prefix("mod ")
                .or_else(|| item.strip_prefix("pub mod "))
                .and_then(|rest| rest.strip_suffix(';'))
            else {
                continue;
            };
            let dir = if s.path.ends_with("/mod.rs") || s.path.ends_with("/lib.rs") {
                Path::new(&s.path).parent().expect("a folder").to_path_buf()
            } else {
                Path::new(&s.path).with_extension("")
            };
            for candidate in [
                dir.join(format!("{name}.rs")),
                dir.join(name).join("mod.rs"),
            ] {
                out.insert(candidate.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

/// The lines of a file before its first `#[cfg(test)]` followed by an inline `mod … {`.
fn non_test_lines(code: &str) -> usize {
    let lines: Vec<&str> = code.lines().collect();
    for (n, pair) in lines.windows(2).enumerate() {
        let item = pair[1].trim();
        if pair[0].trim() == "#[cfg(test)]" && item.starts_with("mod ") && item.ends_with('{') {
            return n;
        }
    }
    lines.len()
}

/// Functions of the first `limit` lines: (name, first line, length in lines).
fn functions(code: &str, limit: usize) -> Vec<(String, usize, usize)> {
    let c: Vec<char> = code.chars().collect();
    let line_of: Vec<usize> = c
        .iter()
        .scan(1, |line, &ch| {
            let here = *line;
            if ch == '\n' {
                *line += 1;
            }
            Some(here)
        })
        .collect();
    let mut out = Vec::new();
    for i in 0..c.len() {
        let word_start = !is_ident_char(i.checked_sub(1).and_then(|p| c.get(p)));
        if !(word_start
            && starts_with(&c, i, "fn")
            && c.get(i + 2).is_some_and(|ch| ch.is_whitespace()))
        {
            continue;
        }
        if line_of[i] > limit {
            break;
        }
        let Some(name) = ident_at(&c, skip_space(&c, i + 2)) else {
            continue;
        };
        // The body: the first `{` outside parentheses and brackets, unless a `;` (no body) comes
        // first.
        let mut nested = 0i32;
        let mut j = i;
        let open = loop {
            match c.get(j) {
                None => break None,
                Some(';') if nested == 0 => break None,
                Some('(' | '[') => nested += 1,
                Some(')' | ']') => nested -= 1,
                Some('{') if nested == 0 => break Some(j),
                _ => {}
            }
            j += 1;
        };
        let Some(open) = open else { continue };
        let mut depth = 0;
        let close = (open..c.len()).find(|&k| {
            match c[k] {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            depth == 0
        });
        let end = close.map_or(line_of[c.len() - 1], |k| line_of[k]);
        out.push((name, line_of[i], end - line_of[i] + 1));
    }
    out
}

#[test]
fn no_source_file_and_no_function_is_too_long_outside_tests() {
    let sources = sources();
    let tests = test_files(&sources);
    let mut long_files = BTreeSet::new();
    let mut long_fns = BTreeSet::new();
    let mut report = String::new();
    for s in sources.iter().filter(|s| !tests.contains(&s.path)) {
        let lines = non_test_lines(&s.code);
        if lines > MAX_FILE_LINES {
            long_files.insert(s.path.clone());
            if !FILES_ALLOWED_LONGER.contains(&s.path.as_str()) {
                report.push_str(&format!(
                    "{}: {lines} lines outside tests (at most {MAX_FILE_LINES})\n",
                    s.path
                ));
            }
        }
        for (name, line, len) in functions(&s.code, lines) {
            let key = format!("{}:{name}", s.path);
            if len > MAX_FN_LINES {
                long_fns.insert(key.clone());
                if !FNS_ALLOWED_LONGER.contains(&key.as_str()) {
                    report.push_str(&format!(
                        "{}:{line}: fn {name} is {len} lines (at most {MAX_FN_LINES})\n",
                        s.path
                    ));
                }
            }
        }
    }
    for allowed in FILES_ALLOWED_LONGER {
        if !long_files.contains(*allowed) {
            report.push_str(&format!(
                "{allowed} fits now (or is gone): take it off FILES_ALLOWED_LONGER\n"
            ));
        }
    }
    for allowed in FNS_ALLOWED_LONGER {
        if !long_fns.contains(*allowed) {
            report.push_str(&format!(
                "{allowed} fits now (or is gone): take it off FNS_ALLOWED_LONGER\n"
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn functions_are_measured_from_fn_to_their_closing_brace() {
    let code = "trait T {\n    fn declared(&self) -> [u8; 2];\n}\nfn two(x: (u8, u8)) -> u8 {\n    x.0\n}\nfn three() {\n    let _ = || {};\n    if true { }\n}\n";
    assert_eq!(
        functions(code, usize::MAX),
        [("two".to_string(), 4, 3), ("three".to_string(), 7, 4)]
    );
    assert_eq!(
        non_test_lines("fn a() {}\n#[cfg(test)]\nmod tests {\n}\n"),
        1
    );
}
