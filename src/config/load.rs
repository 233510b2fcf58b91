//! Reading a policy: files and includes → spanned TOML → raw types, reporting every unknown key.
//!
//! Stages 1–3 of a load (stage 4, values and references, is in `validate`):
//! 1. read each file (main first, then its `include`s depth-first) and parse it into a spanned
//!    TOML tree; a syntax error (or a byte that is not UTF-8) ends the load after this stage
//!    (later errors would be noise);
//! 2. compare every table's keys with the raw types' fields and report **every** unknown key, then
//!    drop them so typed deserialization (stage 3) only reports wrong types (required keys are
//!    `Option`s in `raw`: stage 4 reports all those missing from an entry along with its other
//!    errors);
//! 3. deserialize each entry (`[[cluster]]`, `[[volume]]`, …) on its own, so one bad entry does not
//!    hide errors in the others; names of entries that failed are remembered so references to them
//!    do not cascade into "not defined" noise.
//!
//! Includes nest at most [`MAX_INCLUDE_DEPTH`] files deep, so the recursive reader's stack stays
//! small whatever the files say; messages that print an include chain print only its ends.
//!
//! Only regular files are read (symbolic links are followed): the file type is checked before the
//! file is opened and again on the open handle, which is opened non-blocking, so a FIFO, a device
//! (`/dev/zero`, `/dev/urandom`) or a directory is refused at once instead of blocking or growing
//! without end. A file holds at most [`MAX_FILE_BYTES`] and all files of a policy together at most
//! [`MAX_TOTAL_BYTES`]; reads stop one byte past the bound, so a file that grows while it is read
//! is refused too.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diag::{hint, Collector};
use super::raw::*;

/// How many files an include chain may hold, the main file included. Hand-written layouts (site →
/// cluster → volumes) need a handful; the bound keeps the recursive reader's stack small.
pub(super) const MAX_INCLUDE_DEPTH: usize = 32;

/// Largest policy file read, in bytes (16 MiB). The largest estate measured (`benches/`: 10,000
/// volumes with a window each, written as one file) is about 4 MB; the bound leaves four times
/// that and keeps a load's memory small whatever a path names.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Largest total of all files of one policy (the main file and its includes), in bytes (64 MiB).
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;

/// Why a policy file was not read.
#[derive(Debug)]
pub enum ReadRefused {
    /// The OS refused (missing, permission, …).
    Io(std::io::Error),
    /// Not a regular file: what it is ("a FIFO (named pipe)", "a character device", …).
    NotRegular(&'static str),
    /// More than `limit` bytes.
    TooLarge { limit: u64 },
}

impl std::fmt::Display for ReadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadRefused::Io(e) => write!(f, "{e}"),
            ReadRefused::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            ReadRefused::TooLarge { limit } => {
                write!(f, "it holds more than {} ({limit} bytes)", mib(*limit))
            }
        }
    }
}

/// `bytes` in MiB when whole, for messages.
fn mib(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a file that is not regular is, for messages.
fn kind_of(t: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    }
}

/// Reads the regular file at `path` (symbolic links followed), at most `limit` bytes, without ever
/// blocking on a FIFO or reading a device: the type is checked before opening and again on the
/// handle (opened with `O_NONBLOCK`, so opening a FIFO returns at once), and the read stops one
/// byte past `limit`. The one way the policy's files are read (load and the reload's hash).
pub fn read_policy_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadRefused> {
    use std::os::unix::fs::OpenOptionsExt;
    let checked = |meta: &std::fs::Metadata| -> Result<(), ReadRefused> {
        if let Some(what) = kind_of(meta.file_type()) {
            return Err(ReadRefused::NotRegular(what));
        }
        if meta.len() > limit {
            return Err(ReadRefused::TooLarge { limit });
        }
        Ok(())
    };
    checked(&std::fs::metadata(path).map_err(ReadRefused::Io)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(ReadRefused::Io)?;
    // The path may have been replaced between the two looks: the handle is what is read.
    let meta = file.metadata().map_err(ReadRefused::Io)?;
    checked(&meta)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadRefused::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadRefused::TooLarge { limit });
    }
    Ok(bytes)
}

/// The hint of a refused read.
fn refusal_hint(refused: &ReadRefused) -> String {
    match refused {
        ReadRefused::NotRegular(_) => "a policy file is a regular file (symbolic links to one are \
                                       followed); devices, FIFOs and directories are refused"
            .into(),
        ReadRefused::TooLarge { .. } => format!(
            "a policy file holds at most {} and all of a policy's files at most {} together; \
             check that the path names a policy, or split it with include",
            mib(MAX_FILE_BYTES),
            mib(MAX_TOTAL_BYTES)
        ),
        ReadRefused::Io(_) => {
            "pass the path of a policy TOML file; config/reference.toml documents one".into()
        }
    }
}

/// Stages 1–3 for `text`, read as the file at `path`, and every file it includes.
///
/// Returns `None` for the raw policy when any file has a TOML syntax error.
pub(super) fn read(text: &str, path: &Path) -> (Collector, Option<RawPolicy>) {
    let mut loader = Loader::start(path);
    loader.load_file(path.to_path_buf(), Arc::from(text), true);
    loader.finish()
}

/// Stages 1–3 for the file at `path` and every file it includes; a file that cannot be read is
/// one diagnostic naming the file and the OS error.
pub(super) fn read_path(path: &Path) -> (Collector, Option<RawPolicy>) {
    let mut loader = Loader::start(path);
    match read_policy_file(path, MAX_FILE_BYTES) {
        Ok(bytes) => {
            loader.bytes_read = bytes.len() as u64;
            loader.load_bytes(path.to_path_buf(), bytes, true)
        }
        Err(refused) => {
            let file = loader.cx.sources.add(path.to_path_buf(), Arc::from(""));
            loader.cx.file_error(
                file,
                format!("cannot read the policy file: {refused}"),
                hint(refusal_hint(&refused)),
            );
            loader.syntax_error = true;
        }
    }
    loader.finish()
}

/// A raw entry and where it came from.
pub(super) struct At<T> {
    pub(super) file: usize,
    /// The entry's table in `file`; a missing required key is reported at its start.
    pub(super) span: Range<usize>,
    pub(super) item: T,
}

/// Everything read from all files, before validation.
#[derive(Default)]
pub(super) struct RawPolicy {
    pub(super) agent: Option<At<RawAgent>>,
    pub(super) flexclone: Option<At<RawFlexClone>>,
    pub(super) ha: Option<At<RawHa>>,
    pub(super) clusters: Vec<At<RawCluster>>,
    pub(super) schedules: Vec<At<RawSchedule>>,
    pub(super) snapshot_policies: Vec<At<RawSnapshotPolicy>>,
    pub(super) volumes: Vec<At<RawVolume>>,
    pub(super) windows: Vec<At<RawWindow>>,
    pub(super) veeam: Vec<At<RawVeeam>>,
    /// Names (volume ids for volumes) of entries that failed to deserialize, by section key.
    pub(super) broken: HashMap<&'static str, HashSet<String>>,
}

impl RawPolicy {
    pub(super) fn is_broken(&self, section: &str, name: &str) -> bool {
        self.broken.get(section).is_some_and(|s| s.contains(name))
    }
}

/// Which keys a table may hold, and which of its keys hold tables with their own rules.
struct Schema {
    what: &'static str,
    fields: fn() -> &'static [&'static str],
    nested: &'static [(&'static str, &'static Schema)],
}

const SIMULATOR: Schema = Schema {
    what: "the cluster's simulator table",
    fields: fields_of::<RawSimulator>,
    nested: &[],
};
const CRON_LISTS: Schema = Schema {
    what: "the cron table",
    fields: fields_of::<RawCronLists>,
    nested: &[],
};
const COPIES: Schema = Schema {
    what: "a copies entry",
    fields: fields_of::<RawCopies>,
    nested: &[],
};
const HOOK: Schema = Schema {
    what: "the window's hook table",
    fields: fields_of::<RawHook>,
    nested: &[],
};
const AGENT: Schema = Schema {
    what: "[agent]",
    fields: fields_of::<RawAgent>,
    nested: &[],
};
const FLEXCLONE: Schema = Schema {
    what: "[flexclone]",
    fields: fields_of::<RawFlexClone>,
    nested: &[],
};
const HA: Schema = Schema {
    what: "[ha]",
    fields: fields_of::<RawHa>,
    nested: &[],
};
const CLUSTER: Schema = Schema {
    what: "[[cluster]]",
    fields: fields_of::<RawCluster>,
    nested: &[("simulator", &SIMULATOR)],
};
const SCHEDULE: Schema = Schema {
    what: "[[schedule]]",
    fields: fields_of::<RawSchedule>,
    nested: &[("cron", &CRON_LISTS)],
};
const SNAPSHOT_POLICY: Schema = Schema {
    what: "[[snapshot_policy]]",
    fields: fields_of::<RawSnapshotPolicy>,
    nested: &[("copies", &COPIES)],
};
const VOLUME: Schema = Schema {
    what: "[[volume]]",
    fields: fields_of::<RawVolume>,
    nested: &[],
};
const WINDOW_VEEAM: Schema = Schema {
    what: "the window's veeam table",
    fields: fields_of::<RawWindowVeeam>,
    nested: &[],
};
const WINDOW: Schema = Schema {
    what: "[[window]]",
    fields: fields_of::<RawWindow>,
    nested: &[("hook", &HOOK), ("veeam", &WINDOW_VEEAM)],
};
const VEEAM: Schema = Schema {
    what: "[[veeam]]",
    fields: fields_of::<RawVeeam>,
    nested: &[],
};

#[derive(Default)]
struct Loader {
    cx: Collector,
    raw: RawPolicy,
    /// Canonical paths of the files being loaded, outermost first (for include cycles).
    stack: Vec<PathBuf>,
    /// Canonical paths of every file read so far.
    loaded: HashSet<PathBuf>,
    /// Bytes of every file read so far (at most [`MAX_TOTAL_BYTES`]).
    bytes_read: u64,
    syntax_error: bool,
}

impl Loader {
    fn start(path: &Path) -> Self {
        let mut loader = Loader::default();
        let start = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        loader.stack.push(start.clone());
        loader.loaded.insert(start);
        loader
    }

    fn finish(self) -> (Collector, Option<RawPolicy>) {
        let raw = (!self.syntax_error).then_some(self.raw);
        (self.cx, raw)
    }

    /// Decodes `bytes` as UTF-8 and loads them; a non-UTF-8 byte is reported where it is and, like
    /// a syntax error, ends the load after stage 1.
    fn load_bytes(&mut self, path: PathBuf, bytes: Vec<u8>, main: bool) {
        match String::from_utf8(bytes) {
            Ok(text) => self.load_file(path, Arc::from(text), main),
            Err(e) => {
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let bad = bytes.get(valid).copied().unwrap_or_default();
                // The valid prefix is enough to turn the offset into a line and column.
                let prefix = String::from_utf8_lossy(&bytes[..valid]);
                let file = self.cx.sources.add(path, Arc::from(prefix.as_ref()));
                self.syntax_error = true;
                self.cx.error(
                    file,
                    valid..valid,
                    format!("the file is not UTF-8: byte 0x{bad:02X} here"),
                    hint("policy files are UTF-8 text; re-save the file as UTF-8"),
                );
            }
        }
    }

    fn load_file(&mut self, path: PathBuf, text: Arc<str>, main: bool) {
        let file = self.cx.sources.add(path.clone(), text.clone());
        let doc = match DeTable::parse(&text) {
            Ok(doc) => doc.into_inner(),
            Err(e) => {
                self.syntax_error = true;
                self.cx.error(
                    file,
                    e.span().unwrap_or(0..0),
                    format!("TOML syntax error: {}", e.message().trim_end()),
                    hint("fix the TOML syntax here; validation runs once the file parses"),
                );
                return;
            }
        };
        let includes = self.read_sections(file, doc, main);
        for include in includes {
            self.follow_include(file, &path, include);
        }
    }

    /// Checks top-level keys, deserializes each section, and returns the file's `include` entries.
    fn read_sections(&mut self, file: usize, doc: DeTable<'_>, main: bool) -> Vec<Spanned<String>> {
        let mut includes = Vec::new();
        for (key, mut value) in doc {
            let name: &str = key.get_ref();
            let key_span = key.span();
            if !TOP_LEVEL_KEYS.contains(&name) {
                self.unknown_key(file, key_span, name, "the top level", TOP_LEVEL_KEYS);
                continue;
            }
            if !main && MAIN_FILE_ONLY.contains(&name) {
                self.cx.error(
                    file,
                    key_span,
                    format!("`{name}` is only allowed in the main policy file"),
                    hint(format!(
                        "included files may hold include, cluster, schedule, snapshot_policy, \
                         volume, window and veeam; move [{name}] to the main file"
                    )),
                );
                continue;
            }
            match name {
                "include" => {
                    if let Some(list) = self.typed::<Vec<Spanned<String>>>(file, value, "include") {
                        includes.extend(list);
                    }
                }
                "agent" => {
                    self.strip_unknown(file, &mut value, &AGENT);
                    let span = value.span();
                    if let Some(item) = self.typed::<RawAgent>(file, value, "[agent]") {
                        self.raw.agent = Some(At { file, span, item });
                    }
                }
                "flexclone" => {
                    self.strip_unknown(file, &mut value, &FLEXCLONE);
                    let span = value.span();
                    if let Some(item) = self.typed::<RawFlexClone>(file, value, "[flexclone]") {
                        self.raw.flexclone = Some(At { file, span, item });
                    }
                }
                "ha" => {
                    self.strip_unknown(file, &mut value, &HA);
                    let span = value.span();
                    if let Some(item) = self.typed::<RawHa>(file, value, "[ha]") {
                        self.raw.ha = Some(At { file, span, item });
                    }
                }
                "cluster" => {
                    let entries = self.entries(file, value, "cluster", &CLUSTER);
                    self.raw.clusters.extend(entries);
                }
                "schedule" => {
                    let entries = self.entries(file, value, "schedule", &SCHEDULE);
                    self.raw.schedules.extend(entries);
                }
                "snapshot_policy" => {
                    let entries = self.entries(file, value, "snapshot_policy", &SNAPSHOT_POLICY);
                    self.raw.snapshot_policies.extend(entries);
                }
                "volume" => {
                    let entries = self.entries(file, value, "volume", &VOLUME);
                    self.raw.volumes.extend(entries);
                }
                "window" => {
                    let entries = self.entries(file, value, "window", &WINDOW);
                    self.raw.windows.extend(entries);
                }
                "veeam" => {
                    let entries = self.entries(file, value, "veeam", &VEEAM);
                    self.raw.veeam.extend(entries);
                }
                _ => unreachable!("every key of TOP_LEVEL_KEYS is handled"),
            }
        }
        includes
    }

    /// Deserializes every entry of an array-of-tables section; entries that fail are reported and
    /// their names remembered in `RawPolicy::broken`.
    fn entries<T: for<'de> Deserialize<'de>>(
        &mut self,
        file: usize,
        value: Spanned<DeValue<'_>>,
        section: &'static str,
        schema: &Schema,
    ) -> Vec<At<T>> {
        let span = value.span();
        let DeValue::Array(items) = value.into_inner() else {
            self.cx.error(
                file,
                span,
                format!("`{section}` must be an array of tables"),
                hint(format!(
                    "write each entry under its own [[{section}]] header"
                )),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for mut item in items.into_iter() {
            self.strip_unknown(file, &mut item, schema);
            let peek = |key: &str| {
                item.get_ref()
                    .get(key)
                    .and_then(|v| v.get_ref().as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            let name = if section == "volume" {
                format!("{}/{}/{}", peek("cluster"), peek("svm"), peek("name"))
            } else {
                peek("name")
            };
            let span = item.span();
            let parsed = self.typed::<T>(file, item, schema.what);
            if parsed.is_none() {
                self.raw.broken.entry(section).or_default().insert(name);
            }
            if let Some(item) = parsed {
                out.push(At { file, span, item });
            }
        }
        out
    }

    fn typed<T: for<'de> Deserialize<'de>>(
        &mut self,
        file: usize,
        value: Spanned<DeValue<'_>>,
        what: &str,
    ) -> Option<T> {
        let span = value.span();
        match T::deserialize(value.into_deserializer()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.cx.error(
                    file,
                    e.span().unwrap_or(span),
                    format!("in {what}: {}", in_policy_words(e.message().trim_end())),
                    hint("config/reference.toml documents every key and its type"),
                );
                None
            }
        }
    }

    /// Reports every key `schema` does not allow (recursively) and removes it.
    fn strip_unknown(&mut self, file: usize, value: &mut Spanned<DeValue<'_>>, schema: &Schema) {
        match value.get_mut() {
            DeValue::Table(table) => self.strip_table(file, table, schema),
            DeValue::Array(items) => {
                for item in items.iter_mut() {
                    if let DeValue::Table(table) = item.get_mut() {
                        self.strip_table(file, table, schema);
                    }
                }
            }
            _ => {}
        }
    }

    fn strip_table(&mut self, file: usize, table: &mut DeTable<'_>, schema: &Schema) {
        let allowed = (schema.fields)();
        let mut unknown = Vec::new();
        for (key, value) in table.iter_mut() {
            let name: &str = key.get_ref();
            if !allowed.contains(&name) {
                self.unknown_key(file, key.span(), name, schema.what, allowed);
                unknown.push(name.to_owned());
            } else if let Some((_, nested)) = schema.nested.iter().find(|(k, _)| *k == name) {
                self.strip_unknown(file, value, nested);
            }
        }
        for name in unknown {
            table.remove(name.as_str());
        }
    }

    fn unknown_key(
        &mut self,
        file: usize,
        span: Range<usize>,
        name: &str,
        what: &str,
        allowed: &[&str],
    ) {
        if name == "password" && (what == CLUSTER.what || what == VEEAM.what) {
            self.cx.error(
                file,
                span,
                "`password` is not allowed: secrets never live in the policy file",
                hint(
                    "name an environment variable with password_env = \"NAME\" or a file with \
                     password_file = \"/etc/snapwarden/cluster.pass\"",
                ),
            );
            return;
        }
        let suggestion = closest(name, allowed)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        self.cx.error(
            file,
            span,
            format!("unknown key `{name}` in {what}"),
            hint(format!("{suggestion}allowed keys: {}", allowed.join(", "))),
        );
    }

    fn follow_include(&mut self, from: usize, from_path: &Path, include: Spanned<String>) {
        let span = include.span();
        let relative = include.into_inner();
        let path = from_path.parent().unwrap_or(Path::new("")).join(&relative);
        let cannot_read = |cx: &mut Collector, e: std::io::Error| {
            cx.error(
                from,
                span.clone(),
                format!("cannot read included file {}: {e}", path.display()),
                hint("include paths are relative to the file that names them"),
            );
        };
        let canonical = match std::fs::canonicalize(&path) {
            Ok(c) => c,
            Err(e) => return cannot_read(&mut self.cx, e),
        };
        if let Some(pos) = self.stack.iter().position(|p| *p == canonical) {
            let cycle: Vec<&PathBuf> = self.stack[pos..]
                .iter()
                .chain(std::iter::once(&canonical))
                .collect();
            self.cx.error(
                from,
                span,
                format!("include cycle: {}", chain(&cycle)),
                hint("remove one of the includes that closes the cycle"),
            );
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            let nested: Vec<&PathBuf> = self
                .stack
                .iter()
                .chain(std::iter::once(&canonical))
                .collect();
            self.cx.error(
                from,
                span,
                format!(
                    "includes nest deeper than {MAX_INCLUDE_DEPTH} files: {}",
                    chain(&nested)
                ),
                hint("include the files from fewer levels (a file may include several)"),
            );
            return;
        }
        if self.loaded.contains(&canonical) {
            self.cx.error(
                from,
                span,
                format!("{} is included more than once", path.display()),
                hint("include each file once; its entries would otherwise be defined twice"),
            );
            return;
        }
        let left = MAX_TOTAL_BYTES.saturating_sub(self.bytes_read);
        let bytes = match read_policy_file(&canonical, MAX_FILE_BYTES.min(left)) {
            Ok(bytes) => bytes,
            Err(ReadRefused::Io(e)) => return cannot_read(&mut self.cx, e),
            Err(ReadRefused::TooLarge { .. }) if left < MAX_FILE_BYTES => {
                self.cx.error(
                    from,
                    span,
                    format!(
                        "cannot read included file {}: the policy's files would hold more than \
                         {} together",
                        path.display(),
                        mib(MAX_TOTAL_BYTES)
                    ),
                    hint(refusal_hint(&ReadRefused::TooLarge { limit: left })),
                );
                return;
            }
            Err(refused) => {
                self.cx.error(
                    from,
                    span,
                    format!("cannot read included file {}: {refused}", path.display()),
                    hint(refusal_hint(&refused)),
                );
                return;
            }
        };
        self.bytes_read += bytes.len() as u64;
        self.loaded.insert(canonical.clone());
        self.stack.push(canonical);
        self.load_bytes(path, bytes, false);
        self.stack.pop();
    }
}

/// An include chain for a message: every file when it is short, otherwise the first three, the
/// number left out and the last two, so a message stays a line long however deep the chain.
fn chain(paths: &[&PathBuf]) -> String {
    const HEAD: usize = 3;
    const TAIL: usize = 2;
    let shown = |ps: &[&PathBuf]| {
        ps.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" → ")
    };
    if paths.len() <= HEAD + TAIL + 1 {
        return shown(paths);
    }
    let left_out = paths.len() - HEAD - TAIL;
    format!(
        "{} → … {left_out} more … → {}",
        shown(&paths[..HEAD]),
        shown(&paths[paths.len() - TAIL..])
    )
}

/// The allowed word closest to `word` (edit distance at most 2, or a case-insensitive match).
pub(super) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Rewrites serde's Rust-flavoured wording ("expected i64", "struct RawAgent") in TOML terms.
fn in_policy_words(message: &str) -> String {
    let mut out = message
        .replace("missing field", "missing required key")
        .replace("expected i64", "expected an integer")
        .replace("expected u32", "expected a whole number of at least 0")
        .replace("expected a sequence", "expected an array")
        .replace("expected a borrowed string", "expected a string");
    if let Some(at) = out.find("expected struct Raw") {
        out.replace_range(at.., "expected a table");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_wording_becomes_policy_wording() {
        assert_eq!(
            in_policy_words("invalid type: string \"x\", expected i64"),
            "invalid type: string \"x\", expected an integer"
        );
        assert_eq!(
            in_policy_words("invalid type: integer `5`, expected struct RawAgent"),
            "invalid type: integer `5`, expected a table"
        );
        assert_eq!(
            in_policy_words("missing field `name`"),
            "missing required key `name`"
        );
    }

    #[test]
    fn closest_suggests_small_edits_only() {
        assert_eq!(closest("timezon", &["timezone", "name"]), Some("timezone"));
        assert_eq!(closest("Name", &["timezone", "name"]), Some("name"));
        assert_eq!(closest("colour", &["timezone", "name"]), None);
    }
}
