//! Validating a policy: raw types → `model::Policy`, one pass that reports every error at once.
//!
//! [`load`] and [`parse_str`] run stages 1–3 (`load`: files, includes, unknown keys, TOML types)
//! and then stage 4 here: values, uniqueness and cross-references. Every stage adds to one list of
//! located diagnostics.
//!
//! Invariant: `Ok(Policy)` only when no stage produced a diagnostic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use toml::Spanned;

use super::diag::{hint, Collector, Diagnostic, Diagnostics};
use super::duration::parse_duration;
use super::load::{closest, read, At, RawPolicy};
use super::model::*;
use super::raw::*;
use crate::timeline::{CronError, CronField, CronSpec, Recurrence};

/// Loads and validates the policy at `path` and every file it includes.
pub fn load(path: &Path) -> Result<Policy, Diagnostics> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(Diagnostics(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the policy file: {e}"),
            hint: Some(
                "pass the path of a policy TOML file; config/reference.toml documents one".into(),
            ),
        }])),
    }
}

/// Validates policy `text` as if it were the file at `path`; `include`s are read from disk,
/// relative to `path`'s directory.
pub fn parse_str(text: &str, path: &Path) -> Result<Policy, Diagnostics> {
    let (mut cx, raw) = read(text, path);
    let policy = raw.and_then(|raw| build(&mut cx, raw));
    match policy {
        Some(policy) if cx.diags.is_empty() => Ok(policy),
        _ => Err(cx.finish()),
    }
}

// ---------------------------------------------------------------------------------------------
// Stage 4: values and cross-references.

/// A path from the policy (`state_dir`, `ca_file`, …): as written when absolute, otherwise relative
/// to the directory of the file that names it.
fn resolve_path(cx: &Collector, file: usize, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    cx.sources
        .path(file)
        .parent()
        .unwrap_or(Path::new(""))
        .join(p)
}

fn duration(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
) -> Option<TimeDelta> {
    match parse_duration(value.get_ref()) {
        Ok(d) => Some(d),
        Err(e) => {
            cx.error(
                file,
                value.span(),
                format!("bad duration for `{key}`: {e}"),
                hint("human units are w, d, h, m, s (largest first); ISO-8601 is PnWnDTnHnMnS"),
            );
            None
        }
    }
}

fn positive_duration(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
) -> Option<TimeDelta> {
    let d = duration(cx, file, value, key)?;
    if d <= TimeDelta::zero() {
        cx.error(
            file,
            value.span(),
            format!("`{key}` must be longer than zero"),
            hint("for example \"5m\""),
        );
        return None;
    }
    Some(d)
}

/// ONTAP snapshot names take `[A-Za-z0-9_.-]`.
fn is_snapshot_charset(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parses an IANA zone name; the error is (message, hint) with a close match when one exists.
fn parse_tz(name: &str) -> Result<Tz, (String, String)> {
    if let Ok(tz) = Tz::from_str(name) {
        return Ok(tz);
    }
    let message = format!("unknown time zone \"{name}\"");
    let lower = name.trim().to_lowercase().replace(' ', "_");
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().to_lowercase() == lower)
    {
        return Err((message, format!("did you mean \"{}\"?", tz.name())));
    }
    let city = lower.rsplit('/').next().unwrap_or(&lower);
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().to_lowercase().rsplit('/').next() == Some(city))
    {
        return Err((message, format!("did you mean \"{}\"?", tz.name())));
    }
    Err((
        message,
        "use an IANA time zone name such as \"Europe/Berlin\" or \"America/New_York\"".into(),
    ))
}

fn timezone(cx: &mut Collector, file: usize, value: &Spanned<String>) -> Option<Tz> {
    match parse_tz(value.get_ref()) {
        Ok(tz) => Some(tz),
        Err((message, h)) => {
            cx.error(file, value.span(), message, hint(h));
            None
        }
    }
}

fn cron_hint(e: &CronError, form: &str) -> String {
    match e.field {
        Some(f) => {
            let (lo, hi) = f.range();
            format!("the {} field takes {lo}-{hi}; {form}", f.name())
        }
        None => format!("{form}; for example \"5 * * * *\" is every hour at :05"),
    }
}

const CRON_FORM: &str = "fields are minute hour day-of-month month day-of-week";

fn cron_string(
    cx: &mut Collector,
    file: usize,
    value: &Spanned<String>,
    key: &str,
) -> Option<CronSpec> {
    match CronSpec::parse(value.get_ref()) {
        Ok(spec) => satisfiable(cx, file, value.span(), spec, value.get_ref()),
        Err(e) => {
            cx.error(
                file,
                value.span(),
                format!("bad cron in `{key}`: {e}"),
                hint(cron_hint(&e, CRON_FORM)),
            );
            None
        }
    }
}

fn satisfiable(
    cx: &mut Collector,
    file: usize,
    span: Range<usize>,
    spec: CronSpec,
    shown: &str,
) -> Option<CronSpec> {
    if spec.is_satisfiable() {
        return Some(spec);
    }
    cx.error(
        file,
        span,
        format!("cron \"{shown}\" never fires: no date matches its day and month fields"),
        hint("check day-of-month against month (February has no 30th or 31st, April no 31st)"),
    );
    None
}

/// The entries of one kind (clusters, schedules, …) by name, for duplicates and references.
///
/// Invariant: `index` maps each name to its first entry; `defined` lists names in file order.
struct Names<'r> {
    /// The policy section, as in `[[cluster]]`.
    section: &'static str,
    /// What a reference names, as users read it ("snapshot policy").
    what: &'static str,
    index: HashMap<String, usize>,
    defined: Vec<String>,
    raw: &'r RawPolicy,
}

impl<'r> Names<'r> {
    /// Indexes `entries` (name, file, span) and reports each duplicate at the later entry.
    fn new(
        cx: &mut Collector,
        raw: &'r RawPolicy,
        section: &'static str,
        what: &'static str,
        entries: impl Iterator<Item = (String, usize, Range<usize>)>,
    ) -> Self {
        let label = if section == "volume" {
            what.to_string()
        } else {
            format!("{what} name")
        };
        let mut first: HashMap<String, (usize, usize, Range<usize>)> = HashMap::new();
        let mut defined = Vec::new();
        for (i, (key, file, span)) in entries.enumerate() {
            if let Some((_, f0, s0)) = first.get(&key) {
                let at = cx.sources.describe(*f0, s0, file);
                cx.error(
                    file,
                    span,
                    format!("duplicate {label} \"{key}\" (first defined at {at})"),
                    hint(format!("each {label} must be unique; rename or remove one")),
                );
            } else {
                defined.push(key.clone());
                first.insert(key, (i, file, span));
            }
        }
        let index = first.into_iter().map(|(k, (i, _, _))| (k, i)).collect();
        Names {
            section,
            what,
            index,
            defined,
            raw,
        }
    }

    /// The entry `value` names; reports it when undefined, unless an entry by that name exists
    /// but failed to parse (already reported).
    fn resolve(&self, cx: &mut Collector, file: usize, value: &Spanned<String>) -> Option<usize> {
        let name = value.get_ref();
        if let Some(&i) = self.index.get(name.as_str()) {
            return Some(i);
        }
        if !self.raw.is_broken(self.section, name) {
            let list = if self.defined.is_empty() {
                format!("none are defined; add a [[{}]]", self.section)
            } else {
                format!("defined: {}", self.defined.join(", "))
            };
            cx.error(
                file,
                value.span(),
                format!("{} \"{name}\" is not defined", self.what),
                hint(list),
            );
        }
        None
    }
}

fn volume_id(v: &RawVolume) -> String {
    format!(
        "{}/{}/{}",
        v.cluster.get_ref(),
        v.svm.get_ref(),
        v.name.get_ref()
    )
}

fn build(cx: &mut Collector, raw: RawPolicy) -> Option<Policy> {
    let raw = &raw;
    let agent = build_agent(cx, raw.agent.as_ref());
    let flexclone = build_flexclone(cx, raw.flexclone.as_ref());
    let named = |e: &Spanned<String>, file: usize| (e.get_ref().clone(), file, e.span());

    let cluster_names = Names::new(
        cx,
        raw,
        "cluster",
        "cluster",
        raw.clusters.iter().map(|c| named(&c.item.name, c.file)),
    );
    let clusters: Vec<_> = raw.clusters.iter().map(|c| build_cluster(cx, c)).collect();

    let schedule_names = Names::new(
        cx,
        raw,
        "schedule",
        "schedule",
        raw.schedules.iter().map(|s| named(&s.item.name, s.file)),
    );
    let schedules: Vec<_> = raw
        .schedules
        .iter()
        .map(|s| build_schedule(cx, s))
        .collect();

    let mut policy_names = Names::new(
        cx,
        raw,
        "snapshot_policy",
        "snapshot policy",
        raw.snapshot_policies
            .iter()
            .map(|p| named(&p.item.name, p.file)),
    );
    policy_names.defined.insert(0, "ontap".into());
    let snapshot_policies: Vec<_> = raw
        .snapshot_policies
        .iter()
        .map(|p| build_snapshot_policy(cx, p, &schedule_names))
        .collect();

    let volume_names = Names::new(
        cx,
        raw,
        "volume",
        "volume",
        raw.volumes
            .iter()
            .map(|v| (volume_id(&v.item), v.file, v.item.name.span())),
    );
    let volumes: Vec<_> = raw
        .volumes
        .iter()
        .map(|v| build_volume(cx, v, &cluster_names, &policy_names))
        .collect();
    if raw.volumes.is_empty() && !raw.broken.contains_key("volume") {
        cx.error(
            0,
            0..0,
            "the policy defines no [[volume]]",
            hint("add at least one [[volume]] with cluster, svm, name, luns and snapshot_policy"),
        );
    }

    Names::new(
        cx,
        raw,
        "window",
        "window",
        raw.windows.iter().map(|w| named(&w.item.name, w.file)),
    );
    let windows: Vec<_> = raw
        .windows
        .iter()
        .map(|w| build_window(cx, w, &volume_names))
        .collect();

    Some(Policy {
        source: cx.sources.path(0).clone(),
        files: cx.sources.paths(),
        agent: agent?,
        flexclone: flexclone?,
        clusters: clusters.into_iter().collect::<Option<_>>()?,
        schedules: schedules.into_iter().collect::<Option<_>>()?,
        snapshot_policies: snapshot_policies.into_iter().collect::<Option<_>>()?,
        volumes: volumes.into_iter().collect::<Option<_>>()?,
        windows: windows.into_iter().collect::<Option<_>>()?,
    })
}

const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_STATE_DIR: &str = "/var/lib/snapwarden";
const DEFAULT_PREFIX: &str = "snapwarden";
/// Five minutes: long enough for a clone delete and snapshot delete to settle on ONTAP.
const DEFAULT_GUARD_SECONDS: i64 = 5 * 60;

fn build_agent(cx: &mut Collector, raw: Option<&At<RawAgent>>) -> Option<Agent> {
    let mut ok = true;
    let mut agent = Agent {
        listen: DEFAULT_LISTEN
            .parse()
            .expect("default listen address parses"),
        state_dir: PathBuf::from(DEFAULT_STATE_DIR),
        snapshot_prefix: DEFAULT_PREFIX.into(),
        guard: TimeDelta::seconds(DEFAULT_GUARD_SECONDS),
    };
    let Some(At { file, item }) = raw else {
        return Some(agent);
    };
    let file = *file;
    if let Some(listen) = &item.listen {
        match listen.get_ref().parse::<SocketAddr>() {
            Ok(addr) => agent.listen = addr,
            Err(e) => {
                ok = false;
                cx.error(
                    file,
                    listen.span(),
                    format!("bad `listen` address \"{}\": {e}", listen.get_ref()),
                    hint("write an IP address and a port, for example \"127.0.0.1:9464\""),
                );
            }
        }
    }
    if let Some(dir) = &item.state_dir {
        if dir.get_ref().is_empty() {
            ok = false;
            cx.error(
                file,
                dir.span(),
                "`state_dir` is empty",
                hint("for example \"/var/lib/snapwarden\""),
            );
        } else {
            agent.state_dir = resolve_path(cx, file, dir.get_ref());
        }
    }
    if let Some(prefix) = &item.snapshot_prefix {
        if is_snapshot_charset(prefix.get_ref()) {
            agent.snapshot_prefix = prefix.get_ref().clone();
        } else {
            ok = false;
            cx.error(
                file,
                prefix.span(),
                format!(
                    "`snapshot_prefix` \"{}\" is not a valid ONTAP snapshot name",
                    prefix.get_ref()
                ),
                hint("use one or more of A-Z a-z 0-9 _ . -, for example \"snapwarden\""),
            );
        }
    }
    if let Some(guard) = &item.guard {
        match duration(cx, file, guard, "guard") {
            Some(d) => agent.guard = d,
            None => ok = false,
        }
    }
    ok.then_some(agent)
}

fn build_flexclone(cx: &mut Collector, raw: Option<&At<RawFlexClone>>) -> Option<FlexCloneRule> {
    let mut rule = FlexCloneRule {
        recommend_after: 3,
        within: TimeDelta::days(7),
        use_when_licensed: false,
    };
    let Some(At { file, item }) = raw else {
        return Some(rule);
    };
    let mut ok = true;
    if let Some(n) = &item.recommend_after {
        match u32::try_from(*n.get_ref()) {
            Ok(v) if v >= 1 => rule.recommend_after = v,
            _ => {
                ok = false;
                cx.error(
                    *file,
                    n.span(),
                    format!("`recommend_after` must be at least 1, not {}", n.get_ref()),
                    hint("the number of conflicts on one volume before FlexClone is recommended"),
                );
            }
        }
    }
    if let Some(within) = &item.within {
        match positive_duration(cx, *file, within, "within") {
            Some(d) => rule.within = d,
            None => ok = false,
        }
    }
    if let Some(b) = item.use_when_licensed {
        rule.use_when_licensed = b;
    }
    ok.then_some(rule)
}

/// License packages the simulator knows (ONTAP package names).
const KNOWN_LICENSES: &[&str] = &[
    "base",
    "nfs",
    "cifs",
    "iscsi",
    "fcp",
    "nvme_of",
    "s3",
    "snaprestore",
    "snapmirror",
    "snapmirror_sync",
    "flexclone",
    "snapvault",
    "snaplock",
    "snapmanagersuite",
    "snapprotectapps",
    "fabricpool",
];

/// A diagnostic has been recorded; the value it concerns is unusable.
struct Reported;

fn build_cluster(cx: &mut Collector, at: &At<RawCluster>) -> Option<Cluster> {
    let (file, c) = (at.file, &at.item);
    let name = c.name.get_ref();
    let mut ok = true;
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        ok = false;
        cx.error(
            file,
            c.name.span(),
            format!("cluster name \"{name}\" must be non-empty without '/' or spaces"),
            hint("volume ids are written cluster/svm/volume, so names cannot contain '/'"),
        );
    }
    let endpoint = cluster_endpoint(cx, file, &c.endpoint);
    // With an unusable endpoint, checks that depend on its kind are skipped (they would guess).
    let simulated = matches!(endpoint, Ok(Endpoint::Simulator));
    let real = matches!(endpoint, Ok(Endpoint::Url(_)));

    let username = match &c.username {
        Some(u) if u.get_ref().is_empty() => {
            cx.error(
                file,
                u.span(),
                "`username` is empty",
                hint("for example \"snapwarden\""),
            );
            Err(Reported)
        }
        Some(u) => Ok(u.get_ref().clone()),
        None if real => {
            cx.error(
                file,
                c.name.span(),
                format!("cluster \"{name}\" has no `username`"),
                hint("add username = \"snapwarden\" (an ONTAP user with the REST role)"),
            );
            Err(Reported)
        }
        None => Ok(SIMULATOR_USERNAME.into()),
    };
    let password = cluster_password(cx, file, c, real);
    let tls = cluster_tls(cx, file, c);
    let timezone = match &c.timezone {
        None => Ok(ClusterTimezone::Auto),
        Some(tz) if tz.get_ref() == "auto" => Ok(ClusterTimezone::Auto),
        Some(tz) => parse_tz(tz.get_ref())
            .map(ClusterTimezone::Named)
            .map_err(|(message, h)| {
                let h = format!("{h} (or \"auto\" to read it from the cluster)");
                cx.error(file, tz.span(), message, hint(h));
                Reported
            }),
    };
    let simulator = match (&c.simulator, simulated) {
        (Some(sim), false) => {
            if real {
                cx.error(
                    file,
                    sim.span(),
                    "`simulator` settings are only allowed with endpoint = \"simulator\"",
                    hint("remove the simulator table or set endpoint = \"simulator\""),
                );
            }
            Err(Reported)
        }
        (None, false) => Ok(None),
        (sim, true) => simulator_settings(cx, file, sim.as_ref().map(|s| s.get_ref())).map(Some),
    };
    Some(Cluster {
        name: name.clone(),
        endpoint: endpoint.ok()?,
        username: username.ok()?,
        password: password.ok()?,
        tls: tls.ok()?,
        timezone: timezone.ok()?,
        simulator: simulator.ok()?,
    })
    .filter(|_| ok)
}

/// The simulator's user when the policy names none (the simulator accepts any password).
const SIMULATOR_USERNAME: &str = "admin";

fn cluster_endpoint(
    cx: &mut Collector,
    file: usize,
    endpoint: &Spanned<String>,
) -> Result<Endpoint, Reported> {
    match endpoint.get_ref().as_str() {
        "simulator" => Ok(Endpoint::Simulator),
        url if url.starts_with("https://") && url.len() > "https://".len() => {
            Ok(Endpoint::Url(url.to_string()))
        }
        url => {
            let h = if url.starts_with("http://") {
                "ONTAP's REST API is served over HTTPS; write \"https://…\""
            } else {
                "write \"https://cluster.example.net\" or \"simulator\""
            };
            cx.error(
                file,
                endpoint.span(),
                format!("bad endpoint \"{url}\""),
                hint(h),
            );
            Err(Reported)
        }
    }
}

/// Exactly one of `password_env`/`password_file` for a real cluster, at most one otherwise.
fn cluster_password(
    cx: &mut Collector,
    file: usize,
    c: &RawCluster,
    real: bool,
) -> Result<Option<SecretSource>, Reported> {
    match (&c.password_env, &c.password_file) {
        (Some(_), Some(f)) => {
            cx.error(
                file,
                f.span(),
                "`password_env` and `password_file` are both set",
                hint("keep one: the password comes from an environment variable or a file"),
            );
            Err(Reported)
        }
        (Some(env), None) if env.get_ref().is_empty() => {
            cx.error(
                file,
                env.span(),
                "`password_env` is empty",
                hint("name an environment variable, for example \"SNAPWARDEN_PROD_A_PASSWORD\""),
            );
            Err(Reported)
        }
        (Some(env), None) => Ok(Some(SecretSource::Env(env.get_ref().clone()))),
        (None, Some(f)) => Ok(Some(SecretSource::File(resolve_path(
            cx,
            file,
            f.get_ref(),
        )))),
        (None, None) if real => {
            cx.error(
                file,
                c.name.span(),
                format!("cluster \"{}\" has no password source", c.name.get_ref()),
                hint(
                    "add password_env = \"NAME\" or password_file = \"/path\"; secrets never \
                     live in the policy file",
                ),
            );
            Err(Reported)
        }
        (None, None) => Ok(None),
    }
}

/// At most one of `ca_file`, `pin_sha256` and `insecure = true`; none means the system roots.
fn cluster_tls(cx: &mut Collector, file: usize, c: &RawCluster) -> Result<TlsVerify, Reported> {
    let insecure = c.insecure.as_ref().filter(|i| *i.get_ref());
    let chosen: Vec<(&str, Range<usize>)> = [
        c.ca_file.as_ref().map(|v| ("ca_file", v.span())),
        c.pin_sha256.as_ref().map(|v| ("pin_sha256", v.span())),
        insecure.map(|v| ("insecure", v.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some((first, _)) = chosen.first() {
        for (key, span) in &chosen[1..] {
            cx.error(
                file,
                span.clone(),
                format!("`{key}` conflicts with `{first}`"),
                hint("choose one of ca_file, pin_sha256 and insecure = true (none = system roots)"),
            );
        }
    }
    if chosen.len() > 1 {
        return Err(Reported);
    }
    if let Some(ca) = &c.ca_file {
        return Ok(TlsVerify::CaFile(resolve_path(cx, file, ca.get_ref())));
    }
    if let Some(pin) = &c.pin_sha256 {
        return parse_pin(pin.get_ref())
            .map(TlsVerify::PinSha256)
            .ok_or_else(|| {
                cx.error(
                file,
                pin.span(),
                "`pin_sha256` must be 64 hexadecimal digits (colons allowed)",
                hint(
                    "the SHA-256 of the certificate in DER form, e.g. from `openssl x509 -noout \
                     -fingerprint -sha256`",
                ),
            );
                Reported
            });
    }
    Ok(if insecure.is_some() {
        TlsVerify::Insecure
    } else {
        TlsVerify::System
    })
}

/// Settings of a simulated cluster, defaults filled in: version 9.14.1, licenses [snaprestore].
fn simulator_settings(
    cx: &mut Collector,
    file: usize,
    sim: Option<&RawSimulator>,
) -> Result<SimulatedCluster, Reported> {
    let mut settings = SimulatedCluster {
        version: "9.14.1".into(),
        licenses: vec!["snaprestore".into()],
    };
    let Some(sim) = sim else {
        return Ok(settings);
    };
    let mut ok = true;
    if let Some(v) = &sim.version {
        let parts: Vec<&str> = v.get_ref().split('.').collect();
        if parts.len() >= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        {
            settings.version = v.get_ref().clone();
        } else {
            ok = false;
            cx.error(
                file,
                v.span(),
                format!(
                    "simulator version \"{}\" is not an ONTAP version",
                    v.get_ref()
                ),
                hint("for example \"9.14.1\""),
            );
        }
    }
    if let Some(licenses) = &sim.licenses {
        settings.licenses.clear();
        for l in licenses {
            if KNOWN_LICENSES.contains(&l.get_ref().as_str()) {
                settings.licenses.push(l.get_ref().clone());
            } else {
                ok = false;
                let near = closest(l.get_ref(), KNOWN_LICENSES)
                    .map(|s| format!("did you mean \"{s}\"? "))
                    .unwrap_or_default();
                cx.error(
                    file,
                    l.span(),
                    format!("unknown license package \"{}\"", l.get_ref()),
                    hint(format!("{near}known: {}", KNOWN_LICENSES.join(", "))),
                );
            }
        }
    }
    if ok {
        Ok(settings)
    } else {
        Err(Reported)
    }
}

/// 64 hex digits, optionally separated by colons, as 32 bytes.
fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn build_schedule(cx: &mut Collector, at: &At<RawSchedule>) -> Option<JobSchedule> {
    let (file, s) = (at.file, &at.item);
    let name = s.name.get_ref();
    if name.is_empty() {
        cx.error(
            file,
            s.name.span(),
            "schedule name is empty",
            hint("for example \"hourly\""),
        );
        return None;
    }
    if let (Some(anchor), None) = (&s.anchor, &s.interval) {
        cx.error(
            file,
            anchor.span(),
            "`anchor` only applies to `interval` schedules",
            hint("remove `anchor`, or replace `cron` with `interval`"),
        );
        return None;
    }
    let recurrence = match (&s.cron, &s.interval) {
        (Some(_), Some(interval)) => {
            cx.error(
                file,
                interval.span(),
                format!("schedule \"{name}\" sets both `cron` and `interval`"),
                hint("a job schedule is either cron or interval; keep one"),
            );
            return None;
        }
        (None, None) => {
            cx.error(
                file,
                s.name.span(),
                format!("schedule \"{name}\" has neither `cron` nor `interval`"),
                hint("add cron = \"5 * * * *\" or interval = \"PT30M\""),
            );
            return None;
        }
        (Some(cron), None) => Recurrence::Cron(match cron.get_ref() {
            RawCron::Expr(expr) => {
                let spanned = Spanned::new(cron.span(), expr.clone());
                cron_string(cx, file, &spanned, "cron")?
            }
            RawCron::Lists(lists) => cron_lists(cx, file, cron.span(), lists)?,
        }),
        (None, Some(interval)) => {
            let every = duration(cx, file, interval, "interval")?;
            if every < TimeDelta::seconds(1) {
                cx.error(
                    file,
                    interval.span(),
                    "`interval` must be at least one second",
                    hint("for example \"PT30M\" or \"1h\""),
                );
                return None;
            }
            let anchor = match &s.anchor {
                None => DateTime::<Utc>::UNIX_EPOCH,
                Some(a) => {
                    match DateTime::parse_from_rfc3339(a.get_ref()) {
                        Ok(t) => t.with_timezone(&Utc),
                        Err(e) => {
                            cx.error(
                            file,
                            a.span(),
                            format!("bad `anchor` \"{}\": {e}", a.get_ref()),
                            hint("write an RFC 3339 time with offset, e.g. \"2026-01-01T00:00:00Z\""),
                        );
                            return None;
                        }
                    }
                }
            };
            Recurrence::Interval { every, anchor }
        }
    };
    Some(JobSchedule {
        name: name.clone(),
        recurrence,
    })
}

fn cron_lists(
    cx: &mut Collector,
    file: usize,
    span: Range<usize>,
    lists: &RawCronLists,
) -> Option<CronSpec> {
    let get =
        |l: &Option<Spanned<Vec<u32>>>| l.as_ref().map(|v| v.get_ref().clone()).unwrap_or_default();
    let result = CronSpec::from_lists(
        &get(&lists.minutes),
        &get(&lists.hours),
        &get(&lists.days),
        &get(&lists.weekdays),
        &get(&lists.months),
    );
    match result {
        Ok(spec) => {
            let shown = spec.to_string();
            satisfiable(cx, file, span, spec, &shown)
        }
        Err(e) => {
            let field_span = e
                .field
                .and_then(|f| {
                    let list = match f {
                        CronField::Minute => &lists.minutes,
                        CronField::Hour => &lists.hours,
                        CronField::DayOfMonth => &lists.days,
                        CronField::Month => &lists.months,
                        CronField::DayOfWeek => &lists.weekdays,
                    };
                    list.as_ref().map(|l| l.span())
                })
                .unwrap_or(span);
            let key = e.field.map(|f| f.ontap_key()).unwrap_or("cron");
            cx.error(
                file,
                field_span,
                format!("bad cron list `{key}`: {e}"),
                hint(cron_hint(
                    &e,
                    "lists are minutes, hours, days, weekdays (0 = Sunday) and months; empty = all",
                )),
            );
            None
        }
    }
}

/// ONTAP accepts 1 to 1023 copies per schedule in a snapshot policy.
const MAX_COPIES: u32 = 1023;

fn build_snapshot_policy(
    cx: &mut Collector,
    at: &At<RawSnapshotPolicy>,
    schedules: &Names<'_>,
) -> Option<SnapshotPolicy> {
    let (file, p) = (at.file, &at.item);
    let mut ok = true;
    let name = p.name.get_ref();
    if name == "ontap" || name.is_empty() {
        ok = false;
        cx.error(
            file,
            p.name.span(),
            format!("snapshot policy name \"{name}\" is reserved or empty"),
            hint("volumes use snapshot_policy = \"ontap\" to read the policy from the cluster; pick another name"),
        );
    }
    if p.copies.get_ref().is_empty() {
        ok = false;
        cx.error(
            file,
            p.copies.span(),
            format!("snapshot policy \"{name}\" has no copies"),
            hint("add copies = [ { schedule = \"hourly\", count = 6 } ]"),
        );
    }
    let mut copies = Vec::new();
    let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
    for entry in p.copies.get_ref() {
        let c = entry.get_ref();
        if let Some(first) = seen.get(c.schedule.get_ref().as_str()) {
            ok = false;
            let at = cx.sources.describe(file, first, file);
            cx.error(
                file,
                c.schedule.span(),
                format!(
                    "schedule \"{}\" appears twice in snapshot policy \"{name}\" (first at {at})",
                    c.schedule.get_ref()
                ),
                hint("ONTAP allows each schedule once per snapshot policy; merge the counts"),
            );
        } else {
            seen.insert(c.schedule.get_ref(), c.schedule.span());
        }
        let schedule = schedules.resolve(cx, file, &c.schedule);
        let count = u32::try_from(*c.count.get_ref())
            .ok()
            .filter(|n| (1..=MAX_COPIES).contains(n));
        if count.is_none() {
            cx.error(
                file,
                c.count.span(),
                format!("count {} is out of range 1..=1023", c.count.get_ref()),
                hint("ONTAP keeps between 1 and 1023 copies per schedule"),
            );
        }
        let prefix = c
            .prefix
            .as_ref()
            .map_or_else(|| c.schedule.get_ref().clone(), |p| p.get_ref().clone());
        if !is_snapshot_charset(&prefix) {
            ok = false;
            let span = c.prefix.as_ref().map_or(c.schedule.span(), |p| p.span());
            cx.error(
                file,
                span,
                format!("snapshot prefix \"{prefix}\" is not a valid ONTAP snapshot name"),
                hint("use one or more of A-Z a-z 0-9 _ . - (set `prefix` if the schedule name has others)"),
            );
        }
        match (schedule, count) {
            (Some(schedule), Some(count)) => copies.push(Copies {
                schedule,
                count,
                prefix,
            }),
            _ => ok = false,
        }
    }
    ok.then(|| SnapshotPolicy {
        name: name.clone(),
        copies,
    })
}

fn build_volume(
    cx: &mut Collector,
    at: &At<RawVolume>,
    clusters: &Names<'_>,
    policies: &Names<'_>,
) -> Option<Volume> {
    let (file, v) = (at.file, &at.item);
    let mut ok = true;
    for (key, value) in [("svm", &v.svm), ("name", &v.name)] {
        let s = value.get_ref();
        if s.is_empty() || s.contains('/') || s.chars().any(char::is_whitespace) {
            ok = false;
            cx.error(
                file,
                value.span(),
                format!("volume `{key}` \"{s}\" must be non-empty without '/' or spaces"),
                hint("volume ids are written cluster/svm/volume"),
            );
        }
    }
    let cluster = clusters.resolve(cx, file, &v.cluster);
    let schedules = if v.snapshot_policy.get_ref() == "ontap" {
        Some(VolumeSchedules::Ontap)
    } else {
        policies
            .resolve(cx, file, &v.snapshot_policy)
            .map(VolumeSchedules::Policy)
    };
    let name = v.name.get_ref();
    if v.luns.get_ref().is_empty() {
        ok = false;
        cx.error(
            file,
            v.luns.span(),
            format!("volume \"{name}\" lists no LUNs"),
            hint(format!("add luns = [\"/vol/{name}/lun0\"]")),
        );
    }
    let prefix = format!("/vol/{name}/");
    for (i, lun) in v.luns.get_ref().iter().enumerate() {
        let path = lun.get_ref();
        if v.luns.get_ref()[..i].iter().any(|l| l.get_ref() == path) {
            ok = false;
            cx.error(
                file,
                lun.span(),
                format!("LUN \"{path}\" is listed twice"),
                hint("list each LUN once"),
            );
        }
        let rest = path.strip_prefix(&prefix);
        if rest.is_none_or(|r| r.is_empty() || r.ends_with('/')) {
            ok = false;
            cx.error(
                file,
                lun.span(),
                format!("LUN path \"{path}\" is not under {prefix}"),
                hint(format!(
                    "LUN paths of this volume look like \"{prefix}lun0\""
                )),
            );
        }
    }
    let clone = match v.clone.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("auto") => Some(CloneMethod::Auto),
        Some("flexclone") => Some(CloneMethod::FlexClone),
        Some("snaprestore") => Some(CloneMethod::SnapRestore),
        Some(other) => {
            let span = v.clone.as_ref().map(|c| c.span()).unwrap_or_default();
            cx.error(
                file,
                span,
                format!("unknown clone method \"{other}\""),
                hint("use auto, flexclone or snaprestore"),
            );
            None
        }
    };
    Some(Volume {
        cluster: cluster?,
        svm: v.svm.get_ref().clone(),
        name: name.clone(),
        luns: v
            .luns
            .get_ref()
            .iter()
            .map(|l| l.get_ref().clone())
            .collect(),
        schedules: schedules?,
        clone: clone?,
    })
    .filter(|_| ok)
}

/// Two hours: room to move a nightly window past a couple of hourly snapshots.
const DEFAULT_SHIFT_LIMIT_SECONDS: i64 = 2 * 3600;

fn build_window(
    cx: &mut Collector,
    at: &At<RawWindow>,
    volumes_by_id: &Names<'_>,
) -> Option<Window> {
    let (file, w) = (at.file, &at.item);
    let mut ok = true;
    let name = w.name.get_ref();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        ok = false;
        cx.error(
            file,
            w.name.span(),
            format!("window name \"{name}\" may only use A-Z a-z 0-9 _ -"),
            hint("window names become part of backing snapshot names, e.g. \"sql-nightly\""),
        );
    }
    if w.volumes.get_ref().is_empty() {
        ok = false;
        cx.error(
            file,
            w.volumes.span(),
            format!("window \"{name}\" names no volumes"),
            hint("add volumes = [\"cluster/svm/volume\"]"),
        );
    }
    let mut volumes = Vec::new();
    for id in w.volumes.get_ref() {
        match volumes_by_id.resolve(cx, file, id) {
            Some(i) if volumes.contains(&i) => {
                ok = false;
                cx.error(
                    file,
                    id.span(),
                    format!(
                        "volume \"{}\" is listed twice in window \"{name}\"",
                        id.get_ref()
                    ),
                    hint("list each volume once"),
                );
            }
            Some(i) => volumes.push(i),
            None => ok = false,
        }
    }
    let start = cron_string(cx, file, &w.start, "start");
    let timezone = timezone(cx, file, &w.timezone);
    let expected = positive_duration(cx, file, &w.expected, "expected");
    let max = positive_duration(cx, file, &w.max, "max");
    if let (Some(e), Some(m)) = (expected, max) {
        if e > m {
            ok = false;
            cx.error(
                file,
                w.expected.span(),
                format!(
                    "`expected` ({}) is longer than `max` ({})",
                    w.expected.get_ref(),
                    w.max.get_ref()
                ),
                hint("`max` bounds the backup; raise it or lower `expected`"),
            );
        }
    }
    let on_conflict = match w.on_conflict.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("shift") => Some(OnConflict::Shift),
        Some("skip") => Some(OnConflict::Skip),
        Some("run") => Some(OnConflict::Run),
        Some(other) => {
            let span = w.on_conflict.as_ref().map(|c| c.span()).unwrap_or_default();
            cx.error(
                file,
                span,
                format!("unknown on_conflict \"{other}\""),
                hint("use shift, skip or run"),
            );
            None
        }
    };
    let shift_limit = match &w.shift_limit {
        None => Some(TimeDelta::seconds(DEFAULT_SHIFT_LIMIT_SECONDS)),
        Some(s) => duration(cx, file, s, "shift_limit"),
    };
    let hook = match &w.hook {
        None => Some(None),
        Some(h) => {
            let h = h.get_ref();
            let command: Vec<String> = h
                .command
                .get_ref()
                .iter()
                .map(|c| c.get_ref().clone())
                .collect();
            if command.first().is_none_or(String::is_empty) {
                ok = false;
                cx.error(
                    file,
                    h.command.span(),
                    "hook `command` needs a program",
                    hint("command = [\"/usr/local/bin/run-backup\", \"--arg\"]"),
                );
            }
            match &h.timeout {
                None => max.map(|timeout| Some(Hook { command, timeout })),
                Some(t) => positive_duration(cx, file, t, "timeout")
                    .map(|timeout| Some(Hook { command, timeout })),
            }
        }
    };
    Some(Window {
        name: name.clone(),
        volumes,
        start: start?,
        timezone: timezone?,
        expected: expected?,
        max: max?,
        on_conflict: on_conflict?,
        shift_limit: shift_limit?,
        hook: hook?,
    })
    .filter(|_| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid tail appended after each snippet (so the snippet's line numbers are unchanged):
    /// cluster `c` (simulator), schedule `hourly`, snapshot policy `p`, volume `c/s/v`.
    const BASE: &str = r#"
[[cluster]]
name = "c"
endpoint = "simulator"

[[schedule]]
name = "hourly"
cron = "5 * * * *"

[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 6 }]

[[volume]]
cluster = "c"
svm = "s"
name = "v"
luns = ["/vol/v/lun0"]
snapshot_policy = "p"
"#;

    /// Loads `snippet` + [`BASE`] as `p.toml` and compares every diagnostic with `expect`.
    fn check(snippet: &str, expect: &str) {
        check_exact(&format!("{snippet}{BASE}"), expect);
    }

    fn check_exact(input: &str, expect: &str) {
        let actual = match parse_str(input, Path::new("p.toml")) {
            Ok(_) => String::from("(valid)"),
            Err(diags) => diags.to_string(),
        };
        assert_eq!(actual.trim(), expect.trim(), "\n--- actual ---\n{actual}\n");
    }

    fn valid(snippet: &str) -> Policy {
        let input = format!("{snippet}{BASE}");
        parse_str(&input, Path::new("p.toml")).unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn base_alone_is_valid_with_defaults() {
        let p = valid("");
        assert_eq!(p.agent.listen.to_string(), "127.0.0.1:9464");
        assert_eq!(p.agent.guard, TimeDelta::minutes(5));
        assert_eq!(p.flexclone.recommend_after, 3);
        assert_eq!(p.clusters[0].username, "admin");
        assert_eq!(p.clusters[0].timezone, ClusterTimezone::Auto);
        assert_eq!(
            p.clusters[0].simulator,
            Some(SimulatedCluster {
                version: "9.14.1".into(),
                licenses: vec!["snaprestore".into()]
            })
        );
        assert_eq!(p.snapshot_policies[0].copies[0].prefix, "hourly");
        assert_eq!(p.volumes[0].schedules, VolumeSchedules::Policy(0));
        assert!(p.windows.is_empty());
    }

    /// Writes `files` (name, text) into a fresh directory and loads the first one.
    fn check_files(files: &[(&str, &str)], expect: &str) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write policy");
        }
        let actual = match load(&dir.path().join(files[0].0)) {
            Ok(_) => String::from("(valid)"),
            Err(diags) => diags.to_string(),
        };
        let actual = actual.replace(&format!("{}/", dir.path().display()), "");
        let canonical = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
        let actual = actual.replace(&format!("{}/", canonical.display()), "");
        assert_eq!(actual.trim(), expect.trim(), "\n--- actual ---\n{actual}\n");
    }

    #[test]
    fn every_unknown_key_is_reported_with_allowed_keys() {
        check(
            r#"[agent]
guad = "5m"
listn = "x"
[agnt]
[[window]]
name = "w"
volumes = ["c/s/v"]
start = "0 1 * * *"
timezone = "UTC"
expected = "5m"
max = "6m"
hook = { command = ["x"], timout = "1m" }
"#,
            r#"
p.toml:2:1: unknown key `guad` in [agent]
  hint: did you mean `guard`? allowed keys: listen, state_dir, snapshot_prefix, guard
p.toml:3:1: unknown key `listn` in [agent]
  hint: did you mean `listen`? allowed keys: listen, state_dir, snapshot_prefix, guard
p.toml:4:2: unknown key `agnt` in the top level
  hint: did you mean `agent`? allowed keys: include, agent, flexclone, cluster, schedule, snapshot_policy, volume, window
p.toml:12:27: unknown key `timout` in the window's hook table
  hint: did you mean `timeout`? allowed keys: command, timeout
"#,
        );
    }

    #[test]
    fn unknown_keys_in_nested_tables() {
        check(
            r#"[[cluster]]
name = "lab"
endpoint = "simulator"
simulator = { version = "9.14.1", licences = [] }
[[schedule]]
name = "weekly"
cron = { minute = [15] }
[[snapshot_policy]]
name = "q"
copies = [{ schedule = "weekly", count = 1, keep = 2 }]
"#,
            r#"
p.toml:4:35: unknown key `licences` in the cluster's simulator table
  hint: did you mean `licenses`? allowed keys: version, licenses
p.toml:7:10: unknown key `minute` in the cron table
  hint: did you mean `minutes`? allowed keys: minutes, hours, days, weekdays, months
p.toml:10:45: unknown key `keep` in a copies entry
  hint: allowed keys: schedule, count, prefix
"#,
        );
    }

    #[test]
    fn password_in_the_file_is_refused() {
        check(
            r#"[[cluster]]
name = "prod"
endpoint = "https://prod.example.net"
username = "u"
password_env = "P"
password = "hunter2"
"#,
            r#"
p.toml:6:1: `password` is not allowed: secrets never live in the policy file
  hint: name an environment variable with password_env = "NAME" or a file with password_file = "/etc/snapwarden/cluster.pass"
"#,
        );
    }

    #[test]
    fn syntax_error_is_located() {
        check_exact(
            "[agent]\nguard = \"5m\nlisten = 1\n",
            r#"
p.toml:2:12: TOML syntax error: invalid basic string, expected `"`
  hint: fix the TOML syntax here; validation runs once the file parses
"#,
        );
    }

    const WINDOW_HEAD: &str = "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\"]\n";

    #[test]
    fn window_values() {
        check(
            &format!(
                "{WINDOW_HEAD}start = \"61 * * * *\"\ntimezone = \"europe/berlin\"\n\
                 expected = \"50m\"\nmax = \"40m\"\non_conflict = \"later\"\n"
            ),
            r#"
p.toml:4:9: bad cron in `start`: minute field: 61 is out of range 0-59
  hint: the minute field takes 0-59; fields are minute hour day-of-month month day-of-week
p.toml:5:12: unknown time zone "europe/berlin"
  hint: did you mean "Europe/Berlin"?
p.toml:6:12: `expected` (50m) is longer than `max` (40m)
  hint: `max` bounds the backup; raise it or lower `expected`
p.toml:8:15: unknown on_conflict "later"
  hint: use shift, skip or run
"#,
        );
    }

    #[test]
    fn time_zone_hints() {
        check(
            &format!(
                "{WINDOW_HEAD}start = \"0 1 * * *\"\ntimezone = \"Berlin\"\nexpected = \"5m\"\nmax = \"5m\"\n\
                 [[window]]\nname = \"x\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\n\
                 timezone = \"Mars/Olympus\"\nexpected = \"5m\"\nmax = \"5m\"\n"
            ),
            r#"
p.toml:5:12: unknown time zone "Berlin"
  hint: did you mean "Europe/Berlin"?
p.toml:12:12: unknown time zone "Mars/Olympus"
  hint: use an IANA time zone name such as "Europe/Berlin" or "America/New_York"
"#,
        );
    }

    #[test]
    fn unsatisfiable_and_bad_list_crons() {
        check(
            r#"[[schedule]]
name = "never"
cron = "0 0 31 2 *"
[[schedule]]
name = "lists"
cron = { minutes = [5], hours = [24] }
[[schedule]]
name = "both"
cron = "5 * * * *"
interval = "PT1H"
[[schedule]]
name = "bad-interval"
interval = "30 minutes"
"#,
            r#"
p.toml:3:8: cron "0 0 31 2 *" never fires: no date matches its day and month fields
  hint: check day-of-month against month (February has no 30th or 31st, April no 31st)
p.toml:6:33: bad cron list `hours`: hour field: 24 is out of range 0-23
  hint: the hour field takes 0-23; lists are minutes, hours, days, weekdays (0 = Sunday) and months; empty = all
p.toml:10:12: schedule "both" sets both `cron` and `interval`
  hint: a job schedule is either cron or interval; keep one
p.toml:13:12: bad duration for `interval`: "30 minutes" uses unknown unit ' '; write a number and a unit (w, d, h, m, s) such as "90s", "5m", "1h30m", "7d", or an ISO-8601 duration such as "PT30M"
  hint: human units are w, d, h, m, s (largest first); ISO-8601 is PnWnDTnHnMnS
"#,
        );
    }

    #[test]
    fn window_naming_an_undefined_volume_lists_the_defined_ones() {
        check(
            "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\", \"c/s/vol_sql\", \"c/s/v\"]\n\
                 start = \"0 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"5m\"\nmax = \"5m\"\n",
            r#"
p.toml:3:21: volume "c/s/vol_sql" is not defined
  hint: defined: c/s/v
p.toml:3:36: volume "c/s/v" is listed twice in window "w"
  hint: list each volume once
"#,
        );
    }

    #[test]
    fn duplicates_point_at_the_second_and_name_the_first() {
        check(
            r#"[[cluster]]
name = "c"
endpoint = "simulator"
[[schedule]]
name = "hourly"
interval = "1h"
[[snapshot_policy]]
name = "p"
copies = [{ schedule = "hourly", count = 1 }, { schedule = "hourly", count = 2 }]
[[volume]]
cluster = "c"
svm = "s"
name = "v"
luns = ["/vol/v/lun0"]
snapshot_policy = "p"
[[window]]
name = "w"
volumes = ["c/s/v"]
start = "0 1 * * *"
timezone = "UTC"
expected = "5m"
max = "5m"
[[window]]
name = "w"
volumes = ["c/s/v"]
start = "0 2 * * *"
timezone = "UTC"
expected = "5m"
max = "5m"
"#,
            r#"
p.toml:9:60: schedule "hourly" appears twice in snapshot policy "p" (first at line 9)
  hint: ONTAP allows each schedule once per snapshot policy; merge the counts
p.toml:24:8: duplicate window name "w" (first defined at line 17)
  hint: each window name must be unique; rename or remove one
p.toml:32:8: duplicate cluster name "c" (first defined at line 2)
  hint: each cluster name must be unique; rename or remove one
p.toml:36:8: duplicate schedule name "hourly" (first defined at line 5)
  hint: each schedule name must be unique; rename or remove one
p.toml:40:8: duplicate snapshot policy name "p" (first defined at line 8)
  hint: each snapshot policy name must be unique; rename or remove one
p.toml:46:8: duplicate volume "c/s/v" (first defined at line 13)
  hint: each volume must be unique; rename or remove one
"#,
        );
    }

    #[test]
    fn unresolved_references() {
        check(
            r#"[[snapshot_policy]]
name = "q"
copies = [{ schedule = "daily", count = 2000 }]
[[volume]]
cluster = "prod"
svm = "s"
name = "w"
luns = ["/vol/v/lun0", "/vol/w/lun0", "/vol/w/lun0"]
snapshot_policy = "gold"
clone = "copy"
"#,
            r#"
p.toml:3:24: schedule "daily" is not defined
  hint: defined: hourly
p.toml:3:41: count 2000 is out of range 1..=1023
  hint: ONTAP keeps between 1 and 1023 copies per schedule
p.toml:5:11: cluster "prod" is not defined
  hint: defined: c
p.toml:8:9: LUN path "/vol/v/lun0" is not under /vol/w/
  hint: LUN paths of this volume look like "/vol/w/lun0"
p.toml:8:39: LUN "/vol/w/lun0" is listed twice
  hint: list each LUN once
p.toml:9:19: snapshot policy "gold" is not defined
  hint: defined: ontap, q, p
p.toml:10:9: unknown clone method "copy"
  hint: use auto, flexclone or snaprestore
"#,
        );
    }

    #[test]
    fn cluster_secrets_and_tls() {
        check(
            r#"[[cluster]]
name = "both"
endpoint = "https://a.example.net"
username = "u"
password_env = "A"
password_file = "/a"
ca_file = "/ca.pem"
pin_sha256 = "00"
insecure = true
[[cluster]]
name = "neither"
endpoint = "https://b.example.net"
username = "u"
pin_sha256 = "zz"
simulator = { version = "9.14.1" }
[[cluster]]
name = "plain"
endpoint = "http://c.example.net"
"#,
            r#"
p.toml:6:17: `password_env` and `password_file` are both set
  hint: keep one: the password comes from an environment variable or a file
p.toml:8:14: `pin_sha256` conflicts with `ca_file`
  hint: choose one of ca_file, pin_sha256 and insecure = true (none = system roots)
p.toml:9:12: `insecure` conflicts with `ca_file`
  hint: choose one of ca_file, pin_sha256 and insecure = true (none = system roots)
p.toml:11:8: cluster "neither" has no password source
  hint: add password_env = "NAME" or password_file = "/path"; secrets never live in the policy file
p.toml:14:14: `pin_sha256` must be 64 hexadecimal digits (colons allowed)
  hint: the SHA-256 of the certificate in DER form, e.g. from `openssl x509 -noout -fingerprint -sha256`
p.toml:15:13: `simulator` settings are only allowed with endpoint = "simulator"
  hint: remove the simulator table or set endpoint = "simulator"
p.toml:18:12: bad endpoint "http://c.example.net"
  hint: ONTAP's REST API is served over HTTPS; write "https://…"
"#,
        );
    }

    #[test]
    fn types_and_missing_keys_are_reported_per_entry() {
        check(
            r#"[flexclone]
recommend_after = "three"
[[window]]
name = "w"
volumes = ["c/s/v"]
start = "0 1 * * *"
expected = "5m"
max = "5m"
"#,
            r#"
p.toml:2:19: in [flexclone]: invalid type: string "three", expected an integer
  hint: config/reference.toml documents every key and its type
p.toml:3:1: in [[window]]: missing required key `timezone`
  hint: config/reference.toml documents every key and its type
"#,
        );
    }

    #[test]
    fn names_and_prefixes_use_snapshot_characters() {
        check(
            "[agent]\nsnapshot_prefix = \"snap warden\"\nguard = \"5\"\n\
                 [[window]]\nname = \"sql nightly\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\n\
                 timezone = \"UTC\"\nexpected = \"0s\"\nmax = \"5m\"\n",
            r#"
p.toml:2:19: `snapshot_prefix` "snap warden" is not a valid ONTAP snapshot name
  hint: use one or more of A-Z a-z 0-9 _ . -, for example "snapwarden"
p.toml:3:9: bad duration for `guard`: "5" has no unit after 5; write a number and a unit (w, d, h, m, s) such as "90s", "5m", "1h30m", "7d", or an ISO-8601 duration such as "PT30M"
  hint: human units are w, d, h, m, s (largest first); ISO-8601 is PnWnDTnHnMnS
p.toml:5:8: window name "sql nightly" may only use A-Z a-z 0-9 _ -
  hint: window names become part of backing snapshot names, e.g. "sql-nightly"
p.toml:9:12: `expected` must be longer than zero
  hint: for example "5m"
"#,
        );
    }

    #[test]
    fn more_value_checks() {
        check(
            r#"[agent]
listen = "localhost"
[[cluster]]
name = "lab"
endpoint = "simulator"
simulator = { version = "nine", licenses = ["flexclon"] }
[[cluster]]
name = "prod"
endpoint = "https://prod.example.net"
password_env = ""
[[schedule]]
name = "odd"
anchor = "2026-01-01T00:00:00Z"
cron = "5 * * * *"
[[schedule]]
name = "empty"
[[snapshot_policy]]
name = "ontap"
copies = []
[[window]]
name = "w"
volumes = []
start = "0 1 * * *"
timezone = "UTC"
expected = "5m"
max = "5m"
hook = { command = [] }
"#,
            r#"
p.toml:2:10: bad `listen` address "localhost": invalid socket address syntax
  hint: write an IP address and a port, for example "127.0.0.1:9464"
p.toml:6:25: simulator version "nine" is not an ONTAP version
  hint: for example "9.14.1"
p.toml:6:45: unknown license package "flexclon"
  hint: did you mean "flexclone"? known: base, nfs, cifs, iscsi, fcp, nvme_of, s3, snaprestore, snapmirror, snapmirror_sync, flexclone, snapvault, snaplock, snapmanagersuite, snapprotectapps, fabricpool
p.toml:8:8: cluster "prod" has no `username`
  hint: add username = "snapwarden" (an ONTAP user with the REST role)
p.toml:10:16: `password_env` is empty
  hint: name an environment variable, for example "SNAPWARDEN_PROD_A_PASSWORD"
p.toml:13:10: `anchor` only applies to `interval` schedules
  hint: remove `anchor`, or replace `cron` with `interval`
p.toml:16:8: schedule "empty" has neither `cron` nor `interval`
  hint: add cron = "5 * * * *" or interval = "PT30M"
p.toml:18:8: snapshot policy name "ontap" is reserved or empty
  hint: volumes use snapshot_policy = "ontap" to read the policy from the cluster; pick another name
p.toml:19:10: snapshot policy "ontap" has no copies
  hint: add copies = [ { schedule = "hourly", count = 6 } ]
p.toml:22:11: window "w" names no volumes
  hint: add volumes = ["cluster/svm/volume"]
p.toml:27:20: hook `command` needs a program
  hint: command = ["/usr/local/bin/run-backup", "--arg"]
"#,
        );
    }

    #[test]
    fn a_missing_policy_file_is_one_diagnostic() {
        let diags = load(Path::new("/nonexistent/policy.toml")).expect_err("missing file");
        assert_eq!(diags.len(), 1);
        let d = &diags.0[0];
        assert_eq!((d.line, d.column), (1, 1));
        assert!(
            d.message.starts_with("cannot read the policy file: "),
            "{d}"
        );
    }

    #[test]
    fn wrong_shapes_are_type_errors() {
        check(
            r#"agent = 5
window = { name = "x" }
[[schedule]]
name = "s"
cron = { minutes = [-1] }
"#,
            r#"
p.toml:1:9: in [agent]: invalid type: integer `5`, expected a table
  hint: config/reference.toml documents every key and its type
p.toml:2:10: `window` must be an array of tables
  hint: write each entry under its own [[window]] header
p.toml:5:21: in [[schedule]]: invalid value: integer `-1`, expected a whole number of at least 0
  hint: config/reference.toml documents every key and its type
"#,
        );
    }

    #[test]
    fn a_policy_needs_a_volume() {
        check_exact(
            "[[cluster]]\nname = \"c\"\nendpoint = \"simulator\"\n",
            r#"
p.toml:1:1: the policy defines no [[volume]]
  hint: add at least one [[volume]] with cluster, svm, name, luns and snapshot_policy
"#,
        );
    }

    #[test]
    fn an_edit_with_several_errors_reports_all_of_them() {
        // One edit touching four sections: each mistake is reported, none hides another.
        let input = format!(
            "[agent]\nguard = \"5 min\"\n[[window]]\nname = \"w\"\nvolumes = [\"c/s/x\"]\n\
             start = \"0 25 * * *\"\ntimezone = \"Europe/Berln\"\nexpected = \"1h\"\nmax = \"50m\"\n\
             colour = \"red\"\n{BASE}"
        );
        let diags = parse_str(&input, Path::new("p.toml")).expect_err("invalid");
        let lines: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{}", d.line, d.column))
            .collect();
        assert_eq!(
            lines,
            ["2:9", "5:12", "6:9", "7:12", "8:12", "10:1"],
            "{diags}"
        );
    }

    #[test]
    fn valid_values_reach_the_model() {
        let p = valid(
            r#"[agent]
listen = "0.0.0.0:9000"
state_dir = "state"
[flexclone]
recommend_after = 2
within = "P1W"
use_when_licensed = true
[[cluster]]
name = "prod"
endpoint = "https://prod.example.net"
username = "snapwarden"
password_file = "secrets/prod.pass"
pin_sha256 = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"
timezone = "America/New_York"
[[schedule]]
name = "half-hourly"
interval = "PT30M"
anchor = "2026-01-01T00:15:00+01:00"
[[window]]
name = "w"
volumes = ["c/s/v"]
start = "0 1 * * *"
timezone = "UTC"
expected = "5m"
max = "10m"
on_conflict = "run"
shift_limit = "30m"
hook = { command = ["/bin/backup", "--all"] }
"#,
        );
        assert_eq!(p.agent.state_dir, PathBuf::from("state"));
        assert_eq!(p.flexclone.within, TimeDelta::days(7));
        let prod = &p.clusters[0];
        assert_eq!(
            prod.password,
            Some(SecretSource::File(PathBuf::from("secrets/prod.pass")))
        );
        let TlsVerify::PinSha256(pin) = prod.tls else {
            panic!("expected a pin, got {:?}", prod.tls)
        };
        assert_eq!((pin[1], pin[31]), (0x11, 0xff));
        assert_eq!(
            prod.timezone,
            ClusterTimezone::Named(chrono_tz::America::New_York)
        );
        assert!(prod.simulator.is_none());
        let Recurrence::Interval { every, anchor } = p.schedules[0].recurrence else {
            panic!("expected an interval")
        };
        assert_eq!(every, TimeDelta::minutes(30));
        assert_eq!(anchor.to_rfc3339(), "2025-12-31T23:15:00+00:00");
        let w = &p.windows[0];
        assert_eq!(
            (w.on_conflict, w.shift_limit),
            (OnConflict::Run, TimeDelta::minutes(30))
        );
        let hook = w.hook.as_ref().expect("hook");
        assert_eq!(hook.timeout, TimeDelta::minutes(10));
        assert_eq!(w.volumes, [0]);
    }

    #[test]
    fn includes_are_read_relative_and_restricted() {
        check_files(
            &[
                (
                    "main.toml",
                    &format!("include = [\"a.toml\", \"missing.toml\"]\n{BASE}"),
                ),
                (
                    "a.toml",
                    "include = [\"b.toml\"]\n[agent]\nguard = \"1m\"\n",
                ),
                ("b.toml", "include = [\"a.toml\"]\n"),
            ],
            r#"
main.toml:1:22: cannot read included file missing.toml: No such file or directory (os error 2)
  hint: include paths are relative to the file that names them
a.toml:2:2: `agent` is only allowed in the main policy file
  hint: included files may hold include, cluster, schedule, snapshot_policy, volume and window; move [agent] to the main file
b.toml:1:12: include cycle: a.toml → b.toml → a.toml
  hint: remove one of the includes that closes the cycle
"#,
        );
    }

    #[test]
    fn included_entries_join_the_policy_and_duplicates_name_the_file() {
        check_files(
            &[
                ("main.toml", &format!("include = [\"more.toml\"]\n{BASE}")),
                (
                    "more.toml",
                    "[[cluster]]\nname = \"c\"\nendpoint = \"simulator\"\n",
                ),
            ],
            r#"
more.toml:2:8: duplicate cluster name "c" (first defined at main.toml:4)
  hint: each cluster name must be unique; rename or remove one
"#,
        );
    }
}
