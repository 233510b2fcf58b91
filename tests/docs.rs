//! The book stays true: every relative link in README.md, docs/*.md, ARCHITECTURE.md and
//! dashboards/README.md reaches an existing file (and, with `#anchor` into a markdown file, one of
//! its headings by GitHub's slug rule); README.md stays short, opens with the two commands and
//! links the policy guide and the glossary from its first screen; the policy guide's copy of
//! config/minimal.toml is the file; no page carries an internal label (an issue number or a
//! capability code).

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use regex::Regex;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The pages whose links are checked, relative to the repository: README.md, every docs/*.md,
/// ARCHITECTURE.md and dashboards/README.md.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(repo()).unwrap().to_path_buf())
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "no docs/*.md");
    pages.extend(docs);
    pages.push(PathBuf::from("ARCHITECTURE.md"));
    pages.push(PathBuf::from("dashboards/README.md"));
    pages
}

/// The page's lines outside fenced code blocks (```` ``` ```` or `~~~`), each with its 1-based
/// number.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match fence {
            Some(f) if trimmed.starts_with(f) => fence = None,
            Some(_) => {}
            None if trimmed.starts_with("```") => fence = Some("```"),
            None if trimmed.starts_with("~~~") => fence = Some("~~~"),
            None => out.push((i + 1, line)),
        }
    }
    out
}

/// `line` without its inline code spans (a link written inside backticks is not a link).
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + ticks..];
        match after.find(&"`".repeat(ticks)) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every link target on the page with its line: inline links and images (`[text](target)`,
/// `[text](target "title")`, `[text](<target>)`) and reference definitions (`[label]: target`).
fn links(text: &str) -> Vec<(usize, String)> {
    let inline = Regex::new(r"\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+[^)]*)?\)").unwrap();
    let definition = Regex::new(r"^\s{0,3}\[[^\]]+\]:\s*(\S+)").unwrap();
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let line = without_code_spans(line);
        for c in inline.captures_iter(&line) {
            let target = c[1].trim_start_matches('<').trim_end_matches('>');
            out.push((n, target.to_string()));
        }
        if let Some(c) = definition.captures(&line) {
            out.push((n, c[1].to_string()));
        }
    }
    out
}

/// GitHub's anchor for a heading: its text as rendered (code spans, emphasis and link targets
/// gone), lowercased, with everything but letters, digits, `-`, `_` and spaces removed and each
/// space turned into `-`.
fn slug(heading: &str) -> String {
    let link = Regex::new(r"!?\[([^\]]*)\]\([^)]*\)").unwrap();
    let text = link.replace_all(heading, "$1");
    text.chars()
        .filter(|c| *c != '`' && *c != '*')
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a markdown page's headings (ATX headings outside code blocks), with GitHub's
/// `-1`, `-2`, … suffixes for repeated slugs.
fn anchors(text: &str) -> BTreeSet<String> {
    let heading = Regex::new(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$").unwrap();
    let mut out = BTreeSet::new();
    for (_, line) in prose(text) {
        if let Some(c) = heading.captures(line) {
            let base = slug(&c[1]);
            let mut candidate = base.clone();
            let mut n = 0;
            while out.contains(&candidate) {
                n += 1;
                candidate = format!("{base}-{n}");
            }
            out.insert(candidate);
        }
    }
    out
}

/// `base/rel` with `.` and `..` resolved lexically; `None` when it leaves the repository.
fn resolve(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in base.join(rel).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with each relative link of `page` (relative to the repository), if anything.
fn broken_links(page: &Path) -> Vec<String> {
    let text = read(&repo().join(page));
    let dir = page.parent().unwrap_or(Path::new(""));
    let scheme = Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*:").unwrap();
    let mut broken = Vec::new();
    for (line, target) in links(&text) {
        let at = format!("{}:{line}: ({target})", page.display());
        if target.is_empty() {
            broken.push(format!("{at}: empty link"));
            continue;
        }
        if scheme.is_match(&target) || target.starts_with("//") {
            continue; // https:, mailto: …: not a file of this repository
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let file = if path.is_empty() {
            page.to_path_buf()
        } else {
            match resolve(dir, path) {
                Some(f) => f,
                None => {
                    broken.push(format!("{at}: leaves the repository"));
                    continue;
                }
            }
        };
        let full = repo().join(&file);
        if !full.exists() {
            broken.push(format!("{at}: {} does not exist", file.display()));
            continue;
        }
        let Some(anchor) = anchor else { continue };
        if full.extension().is_some_and(|e| e == "md") {
            let have = anchors(&read(&full));
            if !have.contains(anchor) {
                broken.push(format!(
                    "{at}: {} has no heading with the anchor #{anchor}",
                    file.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_reaches_a_file_and_a_heading() {
    let broken: Vec<String> = pages().iter().flat_map(|p| broken_links(p)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_readme_is_at_most_250_lines() {
    let lines = read(&repo().join("README.md")).lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines: move the detail to a page of docs/ and link it"
    );
}

/// The first fenced block of README.md, its lines without comments and blank lines.
fn first_commands() -> Vec<String> {
    let text = read(&repo().join("README.md"));
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("```"));
    lines.next().expect("README.md has a fenced code block");
    lines
        .take_while(|l| !l.trim_start().starts_with("```"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_opens_with_the_demo_and_the_test_suite() {
    assert_eq!(
        first_commands(),
        [
            "cargo run --release -- run --config config/demo.toml --state-dir target/demo-state",
            "scripts/test",
        ],
        "README.md's first code block must hold exactly the two commands a newcomer runs"
    );
    // The README says what `scripts/test` ends with; CI runs it.
    let readme = read(&repo().join("README.md"));
    assert!(readme.contains("cargo test --locked --no-fail-fast"));
    let script = read(&repo().join("scripts/test"));
    assert!(
        script
            .lines()
            .any(|l| l.trim().starts_with("cargo test --locked --no-fail-fast")),
        "scripts/test no longer runs `cargo test --locked --no-fail-fast`, as README.md says"
    );
}

#[test]
fn the_readme_links_the_policy_guide_and_the_glossary_from_its_first_screen() {
    let text = read(&repo().join("README.md"));
    let first_screen: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
    let targets: Vec<String> = links(&first_screen).into_iter().map(|(_, t)| t).collect();
    for page in ["docs/policy.md", "docs/glossary.md"] {
        assert!(
            targets.iter().any(|t| t == page),
            "README.md's first 40 lines do not link {page}"
        );
    }
}

#[test]
fn every_page_of_docs_is_in_the_index() {
    let index = read(&repo().join("docs/README.md"));
    let listed: BTreeSet<String> = links(&index)
        .into_iter()
        .map(|(_, t)| t.split('#').next().unwrap().to_string())
        .collect();
    for page in pages() {
        if page.parent() == Some(Path::new("docs")) && page != Path::new("docs/README.md") {
            let name = page.file_name().unwrap().to_str().unwrap().to_string();
            assert!(
                listed.contains(&name),
                "docs/README.md does not list {name}"
            );
        }
    }
}

#[test]
fn the_policy_guide_shows_the_minimal_policy_as_shipped() {
    let minimal = read(&repo().join("config/minimal.toml"));
    let guide = read(&repo().join("docs/policy.md"));
    assert!(
        guide.contains(&format!("```toml\n{minimal}```\n")),
        "docs/policy.md's copy of config/minimal.toml differs from the file"
    );
}

#[test]
fn no_page_carries_an_internal_label() {
    let label = Regex::new(r"(?i:issue) [0-9]+|\bC[0-9]{1,2}\b").unwrap();
    let mut found = Vec::new();
    for page in pages() {
        let text = read(&repo().join(&page));
        for (n, line) in text.lines().enumerate() {
            if let Some(m) = label.find(line) {
                found.push(format!("{}:{}: {}", page.display(), n + 1, m.as_str()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "internal labels (name the thing instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Hot reload"), "hot-reload");
    assert_eq!(slug("`plan --output json`"), "plan---output-json");
    assert_eq!(
        slug("Veeam Backup & Replication"),
        "veeam-backup--replication"
    );
    assert_eq!(
        slug("What-if: `snapwarden simulate`"),
        "what-if-snapwarden-simulate"
    );
    assert_eq!(slug("ONTAP error 1638555"), "ontap-error-1638555");
    assert_eq!(slug("SnapwardenAgentDown"), "snapwardenagentdown");
    assert_eq!(
        slug("on_conflict: shift, skip, run"),
        "on_conflict-shift-skip-run"
    );
    let repeated = anchors("# A\n## B\n```\n# not a heading\n```\n## B\n");
    assert_eq!(
        repeated,
        ["a", "b", "b-1"].into_iter().map(String::from).collect()
    );
}

#[test]
fn links_in_code_are_not_links() {
    let text = "[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n[d]: w.md\n[e](f.md#g \"title\")";
    let targets: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(targets, ["x.md", "w.md", "f.md#g"]);
}
