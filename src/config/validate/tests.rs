//! Stage-4 tests: each feeds a policy snippet and compares every diagnostic with the text expected.

use std::path::{Path, PathBuf};

use chrono::TimeDelta;

use super::*;
use crate::timeline::Recurrence;

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
  hint: did you mean `guard`? allowed keys: listen, state_dir, snapshot_prefix, guard, concurrency, shutdown_timeout, observe_interval, audit_interval, foreign_snapshot_patterns, token_file, listen_without_token
p.toml:3:1: unknown key `listn` in [agent]
  hint: did you mean `listen`? allowed keys: listen, state_dir, snapshot_prefix, guard, concurrency, shutdown_timeout, observe_interval, audit_interval, foreign_snapshot_patterns, token_file, listen_without_token
p.toml:4:2: unknown key `agnt` in the top level
  hint: did you mean `agent`? allowed keys: include, agent, flexclone, cluster, schedule, snapshot_policy, volume, window, veeam, ha
p.toml:12:27: unknown key `timout` in the window's hook table
  hint: did you mean `timeout`? allowed keys: command, url, timeout
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
  hint: allowed keys: schedule, count, prefix, snapmirror_label
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
p.toml:9:12: `expected` "0s" is out of range 1s..=7d
  hint: a backup takes at least a second, and one longer than a week (7d) cannot sit between two snapshots of a weekly schedule
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
    // The file and the OS error, with no line or column (there is no text to point into).
    assert_eq!((d.line, d.column), (0, 0));
    assert_eq!(
        d.to_string().lines().next(),
        Some("/nonexistent/policy.toml: cannot read the policy file: No such file or directory (os error 2)")
    );
}

#[test]
fn a_non_utf8_byte_is_reported_where_it_is() {
    // Line 2, after `# caf` (5 characters): a Latin-1 `é` (0xE9) in a UTF-8 file; then the same in
    // an included file, after `#  `.
    let located = |files: &[(&str, &[u8])]| -> Vec<(String, usize, usize, String)> {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).expect("write policy");
        }
        let diags = load(&dir.path().join(files[0].0)).expect_err("not UTF-8");
        diags
            .iter()
            .map(|d| {
                let name = d.file.file_name().unwrap_or_default().to_string_lossy();
                (name.into_owned(), d.line, d.column, d.message.clone())
            })
            .collect()
    };
    assert_eq!(
        located(&[("main.toml", b"[agent]\n# caf\xE9\n")]),
        [(
            "main.toml".into(),
            2,
            6,
            "the file is not UTF-8: byte 0xE9 here".into()
        )]
    );
    let main = format!("include = [\"more.toml\"]\n{BASE}");
    assert_eq!(
        located(&[
            ("main.toml", main.as_bytes()),
            ("more.toml", b"# ok\n#  \xFF\n")
        ]),
        [(
            "more.toml".into(),
            2,
            4,
            "the file is not UTF-8: byte 0xFF here".into()
        )]
    );
}

/// Writes `count` files `f0.toml` … where each includes the next (the last includes `last`, when
/// given), loads `f0.toml` and returns every diagnostic but the policy's lack of volumes.
fn load_include_chain(count: usize, last: Option<&str>) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..count {
        let next = if i + 1 < count {
            Some(format!("f{}.toml", i + 1))
        } else {
            last.map(String::from)
        };
        let text = match next {
            Some(next) => format!("include = [\"{next}\"]\n"),
            None => String::new(),
        };
        std::fs::write(dir.path().join(format!("f{i}.toml")), text).expect("write include");
    }
    let diags = load(&dir.path().join("f0.toml")).expect_err("no volumes");
    let prefix = format!("{}/", dir.path().display());
    let canonical = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
    let canonical = format!("{}/", canonical.display());
    diags
        .iter()
        .filter(|d| !d.message.contains("defines no [[volume]]"))
        .map(|d| d.to_string().replace(&prefix, "").replace(&canonical, ""))
        .collect()
}

#[test]
fn a_deep_include_chain_is_refused_without_exhausting_the_stack() {
    let found = load_include_chain(15_000, None);
    assert_eq!(found.len(), 1, "{found:?}");
    let message = &found[0];
    assert!(message.len() < 1024, "{} bytes: {message}", message.len());
    // The 32nd file may not include a 33rd; the chain's first files and its end are named.
    assert!(
        message.starts_with(
            "f31.toml:1:12: includes nest deeper than 32 files: f0.toml → f1.toml → f2.toml → \
             … 28 more … → f31.toml → f32.toml\n"
        ),
        "{message}"
    );
}

#[test]
fn exactly_the_depth_bound_loads() {
    assert_eq!(load_include_chain(32, None), Vec::<String>::new());
}

#[test]
fn a_long_include_cycle_has_a_short_message() {
    let found = load_include_chain(10_000, Some("f0.toml"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].len() < 1024,
        "{} bytes: {}",
        found[0].len(),
        found[0]
    );
    assert!(
        found[0].contains("nest deeper than 32 files"),
        "{}",
        found[0]
    );
    // A cycle within the bound is named as one, with its middle left out.
    let found = load_include_chain(10, Some("f0.toml"));
    assert_eq!(
        found,
        [
            "f9.toml:1:12: include cycle: f0.toml → f1.toml → f2.toml → … 6 more … → f9.toml → \
          f0.toml\n  hint: remove one of the includes that closes the cycle"
        ]
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
listen_without_token = true
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
    assert_eq!(p.agent.token_file, None);
    assert!(p.agent.listen_without_token);
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
  hint: included files may hold include, cluster, schedule, snapshot_policy, volume, window and veeam; move [agent] to the main file
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

/// One bounded key: a snippet with `{v}` where the value goes, values at the bounds (valid) and
/// just past them (refused), the range as the message shows it, and a word of the reason.
struct Bound {
    snippet: &'static str,
    key: &'static str,
    at: &'static [&'static str],
    past: &'static [&'static str],
    range: &'static str,
    reason: &'static str,
}

#[test]
fn every_duration_is_bounded_and_the_bounds_are_inclusive() {
    let bounds = [
        Bound {
            snippet: "[agent]\nguard = \"{v}\"\n",
            key: "guard",
            at: &["0s", "1d", "PT24H"],
            past: &["1d1s", "P1DT1S", "99999999w"],
            range: "0s..=1d",
            reason: "margin kept before a scheduled snapshot",
        },
        Bound {
            snippet: "[flexclone]\nwithin = \"{v}\"\n",
            key: "within",
            at: &["1h", "366d"],
            past: &["59m59s", "366d1s", "0s"],
            range: "1h..=366d",
            reason: "conflicts are counted over this period",
        },
        Bound {
            snippet: "[[schedule]]\nname = \"i\"\ninterval = \"{v}\"\n",
            key: "interval",
            at: &["1m", "PT1M", "366d"],
            past: &["59s", "1s", "366d1s", "P367D"],
            range: "1m..=366d",
            reason: "1023 snapshots per volume",
        },
        Bound {
            snippet: "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\n\
                      timezone = \"UTC\"\nexpected = \"1s\"\nmax = \"{v}\"\n",
            key: "max",
            at: &["1s", "7d", "1w"],
            past: &["0s", "7d1s", "500w", "99999999w"],
            range: "1s..=7d",
            reason: "weekly schedule",
        },
        Bound {
            snippet: "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\n\
                      timezone = \"UTC\"\nexpected = \"{v}\"\nmax = \"7d\"\n",
            key: "expected",
            at: &["1s", "7d"],
            past: &["0s", "7d1s"],
            range: "1s..=7d",
            reason: "weekly schedule",
        },
        Bound {
            snippet: "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\n\
                      timezone = \"UTC\"\nexpected = \"1m\"\nmax = \"1h\"\nshift_limit = \"{v}\"\n",
            key: "shift_limit",
            at: &["0s", "7d"],
            past: &["7d1s"],
            range: "0s..=7d",
            reason: "0s never shifts",
        },
        Bound {
            snippet: "[[snapshot_policy]]\nname = \"m\"\ncopies = []\nmax_defer = \"{v}\"\n",
            key: "max_defer",
            at: &["1m", "PT1M", "4h", "1d", "PT24H"],
            past: &["59s", "0s", "1d1s", "2d"],
            range: "1m..=1d",
            reason: "snapshot names carry the minute",
        },
        Bound {
            snippet: "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\n\
                      timezone = \"UTC\"\nexpected = \"1m\"\nmax = \"1h\"\n\
                      hook = { command = [\"x\"], timeout = \"{v}\" }\n",
            key: "timeout",
            at: &["1s", "7d"],
            past: &["0s", "7d1s"],
            range: "1s..=7d",
            reason: "like `max`",
        },
    ];
    for b in &bounds {
        for v in b.at {
            valid(&b.snippet.replace("{v}", v));
        }
        for v in b.past {
            let snippet = b.snippet.replace("{v}", v);
            // Located at the value's opening quote, counted here from the snippet itself.
            let at = snippet.find(&format!("\"{v}\"")).expect("value in snippet");
            let line = snippet[..at].matches('\n').count() + 1;
            let column = at - snippet[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
            let diags = parse_str(&format!("{snippet}{BASE}"), Path::new("p.toml"))
                .expect_err("past the bound");
            assert_eq!(diags.len(), 1, "{}: {diags}", b.key);
            let d = &diags.0[0];
            assert_eq!(
                (d.line, d.column, d.message.as_str()),
                (
                    line,
                    column,
                    format!("`{}` \"{v}\" is out of range {}", b.key, b.range).as_str()
                ),
            );
            let hint = d.hint.as_deref().unwrap_or_default();
            assert!(hint.contains(b.reason), "{}: {hint}", b.key);
        }
    }
}

#[test]
fn interval_anchors_are_bounded_to_years_1970_through_9999() {
    let snippet =
        |a: &str| format!("[[schedule]]\nname = \"i\"\ninterval = \"1h\"\nanchor = \"{a}\"\n");
    for a in [
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1970-01-01T01:00:00+01:00",
    ] {
        valid(&snippet(a));
    }
    // Just before the epoch, and just after the year 9999 in UTC (written as 9999 with an offset).
    for a in [
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:59:59+01:00",
        "9999-12-31T23:59:59-00:01",
    ] {
        check(
            &snippet(a),
            &format!(
                "p.toml:4:10: `anchor` \"{a}\" is out of range \
                 1970-01-01T00:00:00Z..=9999-12-31T23:59:59Z\n  \
                 hint: an interval counts from an instant between the Unix epoch and the year 9999"
            ),
        );
    }
}

#[test]
fn missing_keys_and_bad_values_of_one_window_are_reported_together() {
    // A first policy's typical mistakes: no `timezone`, no `expected` and a bad cron, all in one run.
    check(
        &format!("{WINDOW_HEAD}start = \"0 25 * * *\"\nmax = \"1h\"\n"),
        r#"
p.toml:1:1: in [[window]]: missing required keys `timezone`, `expected`
  hint: config/reference.toml documents every key and its type
p.toml:4:9: bad cron in `start`: hour field: 25 is out of range 0-23
  hint: the hour field takes 0-23; fields are minute hour day-of-month month day-of-week
"#,
    );
}

#[test]
fn every_missing_required_key_is_reported_with_the_entrys_other_errors() {
    check(
        r#"[[cluster]]
timezone = "Mars/Base"
[[schedule]]
interval = "30s"
[[snapshot_policy]]
copies = [{ count = 0 }]
[[volume]]
clone = "fast"
[[window]]
on_conflict = "later"
hook = { timeout = "0s" }
"#,
        r#"
p.toml:1:1: in [[cluster]]: missing required keys `name`, `endpoint`
  hint: config/reference.toml documents every key and its type
p.toml:2:12: unknown time zone "Mars/Base"
  hint: use an IANA time zone name such as "Europe/Berlin" or "America/New_York" (or "auto" to read it from the cluster)
p.toml:3:1: in [[schedule]]: missing required key `name`
  hint: config/reference.toml documents every key and its type
p.toml:4:12: `interval` "30s" is out of range 1m..=366d
  hint: ONTAP keeps at most 1023 snapshots per volume, so a sub-minute interval is never a real snapshot schedule (1m keeps a year's horizon at 527,040 instants); 366d is one a year
p.toml:5:1: in [[snapshot_policy]]: missing required key `name`
  hint: config/reference.toml documents every key and its type
p.toml:6:11: in a copies entry: missing required key `schedule`
  hint: config/reference.toml documents every key and its type
p.toml:6:21: count 0 is out of range 1..=1023
  hint: ONTAP keeps between 1 and 1023 copies per schedule
p.toml:7:1: in [[volume]]: missing required keys `cluster`, `svm`, `name`, `luns`, `snapshot_policy`
  hint: config/reference.toml documents every key and its type
p.toml:8:9: unknown clone method "fast"
  hint: use auto, flexclone or snaprestore
p.toml:9:1: in [[window]]: missing required keys `name`, `volumes`, `start`, `timezone`, `expected`, `max`
  hint: config/reference.toml documents every key and its type
p.toml:10:15: unknown on_conflict "later"
  hint: use shift, skip or run
p.toml:11:8: a hook needs `command` (a program) or `url` (a webhook)
  hint: hook = { command = ["/usr/local/bin/run-backup"] }
p.toml:11:20: `timeout` "0s" is out of range 1s..=7d
  hint: the hook runs the backup, which takes between a second and a week (7d), like `max`
"#,
    );
    // Errors in present keys no longer stop at the first one either.
    check(
        r#"[[schedule]]
name = ""
cron = "61 * * * *"
anchor = "soon"
[[schedule]]
name = "i"
interval = "1s"
anchor = "1960-01-01T00:00:00Z"
"#,
        r#"
p.toml:2:8: schedule name is empty
  hint: for example "hourly"
p.toml:3:8: bad cron in `cron`: minute field: 61 is out of range 0-59
  hint: the minute field takes 0-59; fields are minute hour day-of-month month day-of-week
p.toml:4:10: `anchor` only applies to `interval` schedules
  hint: remove `anchor`, or replace `cron` with `interval`
p.toml:7:12: `interval` "1s" is out of range 1m..=366d
  hint: ONTAP keeps at most 1023 snapshots per volume, so a sub-minute interval is never a real snapshot schedule (1m keeps a year's horizon at 527,040 instants); 366d is one a year
p.toml:8:10: `anchor` "1960-01-01T00:00:00Z" is out of range 1970-01-01T00:00:00Z..=9999-12-31T23:59:59Z
  hint: an interval counts from an instant between the Unix epoch and the year 9999
"#,
    );
}

#[test]
fn agent_run_settings_have_defaults_and_bounds() {
    let p = valid("");
    assert_eq!(p.agent.concurrency, 4);
    assert_eq!(p.agent.shutdown_timeout, TimeDelta::minutes(2));
    assert_eq!(p.agent.observe_interval, TimeDelta::minutes(1));
    let veeam = &p.agent.foreign_snapshot_patterns;
    assert_eq!(veeam.len(), 1);
    assert!(veeam[0].is_match("veeamsourcesnapshot_2027"));
    assert!(veeam[0].is_match("VeeamAUX_vol1"));
    assert!(!veeam[0].is_match("hourly.2027-01-01_0105"));

    let p = valid(
        "[agent]\nconcurrency = 64\nshutdown_timeout = \"1h\"\nobserve_interval = \"10s\"\nforeign_snapshot_patterns = []\n",
    );
    assert_eq!(p.agent.concurrency, 64);
    assert!(p.agent.foreign_snapshot_patterns.is_empty());

    let r = parse_str(
        &format!(
            "[agent]\nconcurrency = 0\nshutdown_timeout = \"2h\"\nobserve_interval = \"5s\"\nforeign_snapshot_patterns = [\"(unclosed\", \"ok\"]\n{BASE}"
        ),
        Path::new("p.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        r.contains("p.toml:2:15: `concurrency` must be between 1 and 64, not 0"),
        "{r}"
    );
    assert!(
        r.contains("p.toml:3:20:") && r.contains("shutdown_timeout"),
        "{r}"
    );
    assert!(
        r.contains("p.toml:4:20:") && r.contains("observe_interval"),
        "{r}"
    );
    assert!(
        r.contains(
            "p.toml:5:30: foreign snapshot pattern \"(unclosed\" is not a valid regular expression"
        ),
        "{r}"
    );
    assert!(!r.contains("\"ok\""), "{r}");
}

#[test]
fn audit_interval_defaults_to_a_quarter_hour_and_0s_turns_it_off() {
    assert_eq!(valid("").agent.audit_interval, Some(TimeDelta::minutes(15)));
    let p = valid("[agent]\naudit_interval = \"0s\"\n");
    assert_eq!(p.agent.audit_interval, None);
    let p = valid("[agent]\naudit_interval = \"10s\"\n");
    assert_eq!(p.agent.audit_interval, Some(TimeDelta::seconds(10)));
    let p = valid("[agent]\naudit_interval = \"1d\"\n");
    assert_eq!(p.agent.audit_interval, Some(TimeDelta::days(1)));
    for (bad, col) in [
        ("\"5s\"", 18),
        ("\"25h\"", 18),
        ("\"-1m\"", 18),
        ("\"soon\"", 18),
    ] {
        let r = parse_str(
            &format!("[agent]\naudit_interval = {bad}\n{BASE}"),
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            r.contains(&format!("p.toml:2:{col}:")) && r.contains("audit_interval"),
            "{bad}: {r}"
        );
    }
}

#[test]
fn an_absurd_foreign_pattern_is_refused_not_compiled_forever() {
    let long = "a".repeat(300);
    let r = parse_str(
        &format!(
            "[agent]\nforeign_snapshot_patterns = [\"{long}\", \"(x{{1000}}){{1000}}\"]\n{BASE}"
        ),
        Path::new("p.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(r.contains("is longer than 256 bytes"), "{r}");
    assert!(
        r.contains("(x{1000}){1000}") && r.contains("not a valid regular expression"),
        "{r}"
    );
}

#[test]
fn a_hook_is_a_command_or_a_webhook_never_both_or_neither() {
    let window = |hook: &str| {
        format!(
            "[[window]]\nname = \"w\"\nvolumes = [\"c/s/v\"]\nstart = \"0 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"10m\"\nmax = \"20m\"\nhook = {hook}\n"
        )
    };
    let p = valid(&window(
        "{ url = \"https://backup.example.net/run\", timeout = \"15m\" }",
    ));
    let hook = p.windows[0].hook.as_ref().unwrap();
    assert_eq!(
        hook.action,
        HookAction::Webhook("https://backup.example.net/run".into())
    );
    assert_eq!(hook.timeout, TimeDelta::minutes(15));
    let p = valid(&window("{ command = [\"/bin/true\"] }"));
    let hook = p.windows[0].hook.as_ref().unwrap();
    assert_eq!(hook.action, HookAction::Command(vec!["/bin/true".into()]));
    assert_eq!(hook.timeout, TimeDelta::minutes(20));

    check(
        &window("{ command = [\"/bin/true\"], url = \"https://x.example\" }"),
        "p.toml:8:41: a hook has either `command` or `url`, not both\n  hint: keep `command` to run a program, or `url` to call a webhook",
    );
    check(
        &window("{ timeout = \"5m\" }"),
        "p.toml:8:8: a hook needs `command` (a program) or `url` (a webhook)\n  hint: hook = { command = [\"/usr/local/bin/run-backup\"] }",
    );
    for (url, why) in [
        (
            "ftp://x.example/a",
            "must be an http:// or https:// URL with a host",
        ),
        ("https://user:secret@x.example/a", "carries credentials"),
        ("not a url", "is not a URL"),
    ] {
        let r = parse_str(
            &format!("{}{BASE}", window(&format!("{{ url = \"{url}\" }}"))),
            Path::new("p.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            r.contains("p.toml:8:16: hook `url`") && r.contains(why),
            "{url}: {r}"
        );
    }
}

#[test]
fn token_file_resolves_beside_the_policy_and_an_empty_one_is_located() {
    let p = valid("[agent]\ntoken_file = \"secrets/api-token\"\n");
    assert_eq!(p.agent.token_file, Some(PathBuf::from("secrets/api-token")));
    let p = valid("[agent]\ntoken_file = \"/etc/snapwarden/token\"\n");
    assert_eq!(
        p.agent.token_file,
        Some(PathBuf::from("/etc/snapwarden/token"))
    );
    let err = parse_str(
        &format!("[agent]\ntoken_file = \"\"\n{BASE}"),
        Path::new("p.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("p.toml:2:") && err.contains("`token_file` is empty"),
        "{err}"
    );
}

#[test]
fn a_listen_address_off_loopback_needs_a_token_or_says_it_is_meant_open() {
    let open = "off loopback and no `token_file` is set: anyone who reaches it would read the \
                status and the plan\n  hint: set `token_file` to a file holding a bearer token, \
                listen on 127.0.0.1, or add `listen_without_token = true` if the network is trusted";
    check(
        "[agent]\nlisten = \"0.0.0.0:9464\"\n",
        &format!("p.toml:2:10: `listen` address \"0.0.0.0:9464\" is {open}"),
    );
    check(
        "[agent]\nlisten = \"[::]:9464\"\n",
        &format!("p.toml:2:10: `listen` address \"[::]:9464\" is {open}"),
    );
    check(
        "[agent]\nlisten = \"192.0.2.7:9464\"\nlisten_without_token = false\n",
        &format!("p.toml:2:10: `listen` address \"192.0.2.7:9464\" is {open}"),
    );
    // Loopback in every spelling, a token, or the explicit opt-in: valid.
    for listen in [
        "127.0.0.1:9464",
        "127.8.9.10:1",
        "[::1]:9464",
        "[::ffff:127.0.0.1]:9464",
    ] {
        let p = valid(&format!("[agent]\nlisten = \"{listen}\"\n"));
        assert!(!p.agent.listen_without_token, "{listen}");
    }
    let p = valid("[agent]\nlisten = \"0.0.0.0:9464\"\ntoken_file = \"t\"\n");
    assert_eq!(p.agent.token_file, Some(PathBuf::from("t")));
    let p = valid("[agent]\nlisten = \"0.0.0.0:9464\"\nlisten_without_token = true\n");
    assert!(p.agent.listen_without_token);
    // The opt-in and a token contradict each other; a non-boolean is a type error; both located.
    check(
        "[agent]\nlisten = \"0.0.0.0:9464\"\ntoken_file = \"t\"\nlisten_without_token = true\n",
        r#"
p.toml:4:24: `listen_without_token = true` contradicts `token_file`: with a token, every /api/v1 caller must send it
  hint: remove one of the two
"#,
    );
    check(
        "[agent]\nlisten_without_token = \"yes\"\n",
        r#"
p.toml:2:24: in [agent]: invalid type: string "yes", expected a boolean
  hint: config/reference.toml documents every key and its type
"#,
    );
}

use crate::config::{Driver, VeeamJobRef, VeeamServer};

/// A Veeam server `vbr` for the driver tests (line numbers of the snippet come first).
const VEEAM_SERVER: &str = r#"
[[veeam]]
name = "vbr"
url = "https://vbr.example.net:9419"
username = "svc"
password_env = "VBR_PASSWORD"
"#;

/// A window `w` on `c/s/v` with `extra` lines after its required keys (which end at line 7).
fn driver_window(extra: &str) -> String {
    format!(
        "{WINDOW_HEAD}start = \"0 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"5m\"\nmax = \"6m\"\n\
         {extra}{VEEAM_SERVER}"
    )
}

#[test]
fn veeam_servers_and_driver_windows_reach_the_model() {
    let p = valid(&driver_window(
        "driver = \"veeam\"\nveeam = { server = \"vbr\", job = \"SQL nightly\" }\n",
    ));
    assert_eq!(
        p.veeam,
        vec![VeeamServer {
            name: "vbr".into(),
            url: "https://vbr.example.net:9419".into(),
            username: "svc".into(),
            password: Some(SecretSource::Env("VBR_PASSWORD".into())),
            tls: TlsVerify::System,
            api_version: "1.1-rev0".into(),
        }]
    );
    assert_eq!(
        p.windows[0].driver,
        Driver::Veeam(VeeamJobRef {
            server: 0,
            job: "SQL nightly".into(),
            at: Default::default(),
        })
    );
    let p = valid(&driver_window(""));
    assert_eq!(p.windows[0].driver, Driver::Snapwarden(OnOverrun::Release));
    let p = valid(&driver_window(
        "driver = \"hook\"\nhook = { command = [\"/usr/bin/true\"] }\n",
    ));
    assert_eq!(p.windows[0].driver, Driver::Hook(OnOverrun::Release));
    let p = valid(&format!(
        "[[veeam]]\nname = \"b\"\nurl = \"https://b/\"\nusername = \"u\"\n\
         password_file = \"vbr.pass\"\npin_sha256 = \"{}\"\napi_version = \"1.3-rev1\"\n",
        "ab".repeat(32)
    ));
    assert_eq!(p.veeam[0].url, "https://b");
    assert_eq!(
        p.veeam[0].password,
        Some(SecretSource::File(PathBuf::from("vbr.pass")))
    );

    assert_eq!(p.veeam[0].tls, TlsVerify::PinSha256([0xab; 32]));
    assert_eq!(p.veeam[0].api_version, "1.3-rev1");
    // The embedded simulator needs no password.
    let p = valid("[[veeam]]\nname = \"sim\"\nurl = \"simulator\"\nusername = \"u\"\n");
    assert!(p.veeam[0].is_simulator());
    assert_eq!(p.veeam[0].password, None);
}

#[test]
fn a_driver_and_its_veeam_table_come_together() {
    check(
        &driver_window("driver = \"veeam\"\n"),
        r#"
p.toml:8:10: window "w" has driver = "veeam" but no `veeam` table
  hint: add veeam = { server = "NAME", job = "JOB NAME OR ID" }
"#,
    );
    check(
        &driver_window("veeam = { server = \"vbr\", job = \"j\" }\n"),
        r#"
p.toml:8:9: a `veeam` table needs driver = "veeam" (window "w" has driver "snapwarden")
  hint: add driver = "veeam", or remove the veeam table
"#,
    );
    check(
        &driver_window("driver = \"hook\"\nveeam = { server = \"vbr\", job = \"j\" }\nhook = { command = [\"x\"] }\n"),
        r#"
p.toml:9:9: a `veeam` table needs driver = "veeam" (window "w" has driver "hook")
  hint: add driver = "veeam", or remove the veeam table
"#,
    );
    check(
        &driver_window("driver = \"hook\"\n"),
        r#"
p.toml:8:10: window "w" has driver = "hook" but no `hook`
  hint: add hook = { command = ["/usr/local/bin/run-backup"] } (or url = …)
"#,
    );
    check(
        &driver_window(
            "driver = \"veeam\"\nveeam = { server = \"vbr\", job = \"j\" }\nhook = { command = [\"x\"] }\n",
        ),
        r#"
p.toml:10:8: window "w" has driver = "veeam" and a `hook`
  hint: the Veeam job is the backup; remove the hook, or use driver = "hook"
"#,
    );
    check(
        &driver_window("driver = \"Veeam\"\n"),
        r#"
p.toml:8:10: unknown driver "Veeam"
  hint: use snapwarden (the default), veeam or hook
"#,
    );
}

#[test]
fn a_veeam_table_names_a_defined_server_and_a_job() {
    check(
        &driver_window("driver = \"veeam\"\nveeam = { server = \"vbr2\", job = \"  \" }\n"),
        r#"
p.toml:9:20: Veeam server "vbr2" is not defined
  hint: defined: vbr
p.toml:9:34: `job` must name a Veeam job (non-empty, at most 256 bytes)
  hint: the job's name as the Veeam console shows it, or its id (a UUID)
"#,
    );
    check(
        &format!(
            "{WINDOW_HEAD}start = \"0 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"5m\"\nmax = \"6m\"\n\
             driver = \"veeam\"\nveeam = {{ server = \"vbr\", jobb = \"x\" }}\n"
        ),
        r#"
p.toml:9:9: in the window's veeam table: missing required key `job`
  hint: config/reference.toml documents every key and its type
p.toml:9:20: Veeam server "vbr" is not defined
  hint: none are defined; add a [[veeam]]
p.toml:9:27: unknown key `jobb` in the window's veeam table
  hint: did you mean `job`? allowed keys: server, job
"#,
    );
}

#[test]
fn veeam_server_values_are_checked_and_secrets_refused() {
    check(
        r#"[[veeam]]
name = "a b"
url = "http://vbr:9419"
username = ""
password = "hunter2"
password_env = "P"
password_file = "p"
ca_file = "ca.pem"
insecure = true
api_version = "1.1"
[[veeam]]
name = "vbr"
url = "https://admin:pw@vbr/api"
[[veeam]]
url = "https://vbr"
"#,
        r#"
p.toml:2:8: Veeam server name "a b" must be non-empty without '/' or spaces
  hint: windows name the server with veeam = { server = "NAME", … }
p.toml:3:7: bad Veeam url "http://vbr:9419": Veeam's REST API is served over HTTPS; write https://…
  hint: write "https://vbr.example.net:9419" (the REST API's default port is 9419), or "simulator" for the embedded simulator
p.toml:4:12: `username` must be non-empty and at most 256 bytes
  hint: a Veeam user with the Backup Operator role, e.g. "DOMAIN\\snapwarden"
p.toml:5:1: `password` is not allowed: secrets never live in the policy file
  hint: name an environment variable with password_env = "NAME" or a file with password_file = "/etc/snapwarden/cluster.pass"
p.toml:7:17: `password_env` and `password_file` are both set
  hint: keep one: the password comes from an environment variable or a file
p.toml:9:12: `insecure` conflicts with `ca_file`
  hint: choose one of ca_file, pin_sha256 and insecure = true (none = system roots)
p.toml:10:15: `api_version` "1.1" is not <major>.<minor>-rev<n>
  hint: for example "1.1-rev0" (the default) or "1.3-rev1"
p.toml:11:1: in [[veeam]]: missing required key `username`
  hint: config/reference.toml documents every key and its type
p.toml:12:8: Veeam server "vbr" has no password source
  hint: add password_env = "NAME" or password_file = "/path"; secrets never live in the policy file
p.toml:13:7: bad Veeam url "https://admin:pw@vbr/api": carries credentials; secrets never live in the policy file
  hint: write "https://vbr.example.net:9419" (the REST API's default port is 9419), or "simulator" for the embedded simulator
p.toml:14:1: in [[veeam]]: missing required keys `name`, `username`
  hint: config/reference.toml documents every key and its type
p.toml:14:1: this Veeam server has no password source
  hint: add password_env = "NAME" or password_file = "/path"; secrets never live in the policy file
"#,
    );
}

#[test]
fn duplicate_veeam_servers_are_reported() {
    check(
        &format!("{VEEAM_SERVER}{VEEAM_SERVER}"),
        r#"
p.toml:9:8: duplicate Veeam server name "vbr" (first defined at line 3)
  hint: each Veeam server name must be unique; rename or remove one
"#,
    );
}

#[test]
fn ha_defaults_and_values_reach_the_model() {
    let p = valid("");
    assert!(p.ha.is_none(), "without [ha] the agent runs alone");
    let p = valid("[ha]\nbackend = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379/\"]\n");
    let ha = p.ha.expect("[ha]");
    assert_eq!(ha.backend, HaBackend::Etcd);
    assert_eq!(ha.endpoints, vec!["http://127.0.0.1:2379".to_string()]);
    assert_eq!(ha.lease_ttl, TimeDelta::seconds(15));
    assert_eq!(ha.key, "/snapwarden/p/leader");
    assert_eq!(
        ha.identity,
        format!(
            "{}-{}",
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .unwrap_or_default()
                .trim(),
            std::process::id()
        )
    );
    assert_eq!(ha.username, None);
    assert_eq!(ha.tls, TlsVerify::System);
    let p = valid(
        r#"[ha]
backend = "etcd"
endpoints = ["https://e1:2379", "https://e2:2379", "https://e3:2379"]
lease_ttl = "3s"
key = "/sw/prod/leader"
identity = "replica-a"
username = "sw"
password_file = "etcd.pass"
ca_file = "ca.pem"
"#,
    );
    let ha = p.ha.expect("[ha]");
    assert_eq!(ha.endpoints.len(), 3);
    assert_eq!(ha.lease_ttl, TimeDelta::seconds(3));
    assert_eq!(ha.key, "/sw/prod/leader");
    assert_eq!(ha.identity, "replica-a");
    assert_eq!(ha.username.as_deref(), Some("sw"));
    assert_eq!(
        ha.password,
        Some(SecretSource::File(PathBuf::from("etcd.pass")))
    );
    assert_eq!(ha.tls, TlsVerify::CaFile(PathBuf::from("ca.pem")));
}

#[test]
fn ha_errors_are_located() {
    check(
        r#"[ha]
backend = "zookeeper"
endpoints = ["127.0.0.1:2379", "http://e1", "http://e2:99999", "http://e3:2379"]
lease_ttl = "1s"
key = "leader"
identity = "two words"
username = "sw"
pin_sha256 = "00"
"#,
        r#"
p.toml:1:1: [ha] has no password source
  hint: add password_env = "NAME" or password_file = "/path"; secrets never live in the policy file
p.toml:2:11: unknown `backend` "zookeeper"
  hint: the election backend snapwarden supports is "etcd"
p.toml:3:14: bad endpoint "127.0.0.1:2379": not an http:// or https:// URL
  hint: an etcd client URL, for example "http://127.0.0.1:2379" or "https://etcd-1.example.net:2379"
p.toml:3:32: bad endpoint "http://e1": no port
  hint: an etcd client URL, for example "http://127.0.0.1:2379" or "https://etcd-1.example.net:2379"
p.toml:3:45: bad endpoint "http://e2:99999": expected scheme://host:port
  hint: an etcd client URL, for example "http://127.0.0.1:2379" or "https://etcd-1.example.net:2379"
p.toml:4:13: `lease_ttl` "1s" is out of range 2s..=5m
  hint: leadership lapses this long after the leader's last keep-alive: under 2s a busy host loses leadership between keep-alives, over 5 minutes a dead leader blocks every cycle for too long
p.toml:5:7: bad `key` "leader"
  hint: an absolute key, for example "/snapwarden/prod/leader"; at most 512 bytes
p.toml:6:12: bad `identity` "two words"
  hint: a name without spaces, for example "snapwarden-a"; at most 128 bytes
p.toml:8:14: `pin_sha256` must be 64 hexadecimal digits (colons allowed)
  hint: the SHA-256 of the certificate in DER form, e.g. from `openssl x509 -noout -fingerprint -sha256`
"#,
    );
    check(
        "[ha]\nendpoints = []\nlease_ttl = \"6m\"\npassword_env = \"X\"\n",
        r#"
p.toml:1:1: in [ha]: missing required key `backend`
  hint: config/reference.toml documents every key and its type
p.toml:1:1: [ha] has a password source but no `username`
  hint: etcd authenticates a user name and a password: add username = "snapwarden"
p.toml:2:13: `endpoints` must list 1 to 16 members
  hint: for example ["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379"]
p.toml:3:13: `lease_ttl` "6m" is out of range 2s..=5m
  hint: leadership lapses this long after the leader's last keep-alive: under 2s a busy host loses leadership between keep-alives, over 5 minutes a dead leader blocks every cycle for too long
"#,
    );
    check(
        "[ha]\nbackend = \"etcd\"\nendpoints = [\"http://e:2379\"]\ninsecure = true\n",
        r#"
p.toml:4:12: TLS settings in [ha] but no `https://` endpoint
  hint: write the endpoints as https://… or remove ca_file, pin_sha256 and insecure
"#,
    );
    check_files(
        &[
            ("p.toml", &format!("include = [\"i.toml\"]\n{BASE}")),
            (
                "i.toml",
                "[ha]\nbackend = \"etcd\"\nendpoints = [\"http://e:1\"]\n",
            ),
        ],
        r#"
i.toml:1:2: `ha` is only allowed in the main policy file
  hint: included files may hold include, cluster, schedule, snapshot_policy, volume, window and veeam; move [ha] to the main file
"#,
    );
}

#[test]
fn on_overrun_releases_by_default_and_a_finishing_hook_gets_twice_max() {
    let p = valid(&driver_window("hook = { command = [\"x\"] }\n"));
    let w = &p.windows[0];
    assert_eq!(w.driver.on_overrun(), OnOverrun::Release);
    assert_eq!(w.hook.as_ref().unwrap().timeout, TimeDelta::minutes(6));
    let p = valid(&driver_window(
        "on_overrun = \"finish\"\nhook = { command = [\"x\"] }\n",
    ));
    let w = &p.windows[0];
    assert_eq!(w.driver.on_overrun(), OnOverrun::Finish);
    assert_eq!(w.hook.as_ref().unwrap().timeout, TimeDelta::minutes(12));
    // An explicit timeout wins; twice a week's max stays a week.
    let p = valid(&driver_window(
        "on_overrun = \"finish\"\nhook = { command = [\"x\"], timeout = \"1h\" }\n",
    ));
    assert_eq!(
        p.windows[0].hook.as_ref().unwrap().timeout,
        TimeDelta::hours(1)
    );
    let p = valid(
        &driver_window("on_overrun = \"finish\"\nhook = { command = [\"x\"] }\n")
            .replace("max = \"6m\"", "max = \"7d\""),
    );
    assert_eq!(
        p.windows[0].hook.as_ref().unwrap().timeout,
        TimeDelta::days(7)
    );
}

#[test]
fn on_overrun_errors_are_located() {
    check(
        &driver_window("on_overrun = \"wait\"\n"),
        r#"
p.toml:8:14: unknown on_overrun "wait"
  hint: use release (end the backup at max) or finish (let it finish, at the risk of a chain conflict)
"#,
    );
    check(
        &driver_window(
            "driver = \"veeam\"\nveeam = { server = \"vbr\", job = \"j\" }\non_overrun = \"release\"\n",
        ),
        r#"
p.toml:10:14: window "w" has driver = "veeam" and `on_overrun`
  hint: snapwarden never stops a Veeam job: a Veeam window always finishes; remove on_overrun
"#,
    );
}

/// Managed schedules: a policy with copies = [] (ONTAP's `none`), one handed to snapwarden, and
/// volumes that hand over everything, some copies, or copies beside a policy read from ONTAP.
const MANAGED: &str = r#"[[schedule]]
name = "daily"
cron = "10 0 * * *"
[[snapshot_policy]]
name = "none-here"
copies = []
[[snapshot_policy]]
name = "handed"
max_defer = "90m"
copies = [
  { schedule = "hourly", count = 24, snapmirror_label = "hourly" },
  { schedule = "daily", count = 7, prefix = "nightly", snapmirror_label = "sv.daily-1" },
]
[[snapshot_policy]]
name = "daily-only"
copies = [{ schedule = "daily", count = 7 }]
[[volume]]
cluster = "c"
svm = "s"
name = "all"
luns = ["/vol/all/lun0"]
snapshot_policy = "none-here"
managed_snapshots = "handed"
[[volume]]
cluster = "c"
svm = "s"
name = "some"
luns = ["/vol/some/lun0"]
snapshot_policy = "p"
managed_snapshots = "daily-only"
[[volume]]
cluster = "c"
svm = "s"
name = "discovered"
luns = ["/vol/discovered/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "handed"
"#;

#[test]
fn managed_snapshots_reach_the_model() {
    let p = valid(MANAGED);
    let index = |name: &str| {
        p.snapshot_policies
            .iter()
            .position(|sp| sp.name == name)
            .unwrap()
    };
    let volume = |name: &str| p.volumes.iter().find(|v| v.name == name).unwrap();
    assert!(p.snapshot_policies[index("none-here")].copies.is_empty());
    assert_eq!(volume("all").managed, Some(index("handed")));
    assert_eq!(
        volume("all").schedules,
        VolumeSchedules::Policy(index("none-here"))
    );
    assert_eq!(volume("some").managed, Some(index("daily-only")));
    assert_eq!(volume("discovered").managed, Some(index("handed")));
    assert_eq!(volume("discovered").schedules, VolumeSchedules::Ontap);
    assert_eq!(volume("v").managed, None, "a volume without the key");
    let handed = &p.snapshot_policies[index("handed")];
    assert_eq!(handed.max_defer, TimeDelta::minutes(90));
    let copies: Vec<(&str, Option<&str>)> = handed
        .copies
        .iter()
        .map(|c| (c.prefix.as_str(), c.snapmirror_label.as_deref()))
        .collect();
    assert_eq!(
        copies,
        [("hourly", Some("hourly")), ("nightly", Some("sv.daily-1"))]
    );
    // The default, and it is inside the documented bound.
    assert_eq!(
        p.snapshot_policies[index("p")].max_defer,
        TimeDelta::hours(4)
    );
    assert!(crate::domain::limits::MAX_DEFER.contains(DEFAULT_MAX_DEFER));
    // Labels and max_defer are accepted on a policy no volume manages (ONTAP's have labels too).
    let p = valid(
        "[[snapshot_policy]]\nname = \"labelled\"\nmax_defer = \"1d\"\n\
         copies = [{ schedule = \"hourly\", count = 2, snapmirror_label = \"h\" }]\n",
    );
    assert_eq!(
        p.snapshot_policies[0].copies[0].snapmirror_label.as_deref(),
        Some("h")
    );
}

#[test]
fn managed_snapshots_names_an_inline_policy() {
    check(
        r#"[[volume]]
cluster = "c"
svm = "s"
name = "a"
luns = ["/vol/a/lun0"]
snapshot_policy = "p"
managed_snapshots = "nope"
[[volume]]
cluster = "c"
svm = "s"
name = "b"
luns = ["/vol/b/lun0"]
snapshot_policy = "p"
managed_snapshots = "ontap"
[[volume]]
cluster = "c"
svm = "s"
name = "c"
luns = ["/vol/c/lun0"]
snapshot_policy = "p"
managed_snapshots = "p"
[[volume]]
cluster = "c"
svm = "s"
name = "d"
luns = ["/vol/d/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "empty"
[[snapshot_policy]]
name = "empty"
copies = []
"#,
        r#"
p.toml:7:21: managed snapshot policy "nope" is not defined
  hint: defined: empty, p
p.toml:14:21: `managed_snapshots` cannot be "ontap": snapwarden takes only copies the policy file defines
  hint: name an inline [[snapshot_policy]] holding the copies snapwarden takes instead of ONTAP
p.toml:21:21: volume "c/s/c" names snapshot policy "p" in both `snapshot_policy` and `managed_snapshots`
  hint: snapshot_policy says what ONTAP still takes and managed_snapshots what snapwarden takes instead; point snapshot_policy at a policy without the handed-over copies (copies = [] when ONTAP takes none)
p.toml:31:10: managed snapshot policy "empty" has no copies for snapwarden to take
  hint: add copies = [ { schedule = "hourly", count = 24 } ], or remove managed_snapshots from the volumes naming it
"#,
    );
}

#[test]
fn managed_prefixes_are_distinct_and_never_snapwardens_own() {
    check(
        r#"[agent]
snapshot_prefix = "sw"
[[schedule]]
name = "daily"
cron = "10 0 * * *"
[[schedule]]
name = "weekly"
cron = "15 0 * * 0"
[[snapshot_policy]]
name = "twice"
copies = [
  { schedule = "hourly", count = 24 },
  { schedule = "daily", count = 7, prefix = "hourly" },
  { schedule = "weekly", count = 2, prefix = "sw" },
]
[[snapshot_policy]]
name = "odd"
copies = [
  { schedule = "hourly", count = 24, prefix = "sw.managed" },
  { schedule = "daily", count = 7, prefix = ".daily" },
  { schedule = "weekly", count = 2, prefix = "-weekly" },
]
[[snapshot_policy]]
name = "unused"
copies = [{ schedule = "hourly", count = 1, prefix = "sw" }, { schedule = "daily", count = 1, prefix = "sw" }]
[[volume]]
cluster = "c"
svm = "s"
name = "a"
luns = ["/vol/a/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "twice"
[[volume]]
cluster = "c"
svm = "s"
name = "b"
luns = ["/vol/b/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "twice"
[[volume]]
cluster = "c"
svm = "s"
name = "c"
luns = ["/vol/c/lun0"]
snapshot_policy = "ontap"
managed_snapshots = "odd"
"#,
        r#"
p.toml:13:45: copies of managed snapshot policy "twice" share the prefix "hourly" (first at line 12)
  hint: snapwarden keeps each copy's count by its prefix; give each copy its own `prefix`
p.toml:14:46: managed prefix "sw" is taken by [agent] snapshot_prefix "sw"
  hint: backing snapshots are named sw.<window>.<UTC timestamp>; set another `prefix` on this copy
p.toml:19:47: managed prefix "sw.managed" is taken by [agent] snapshot_prefix "sw"
  hint: backing snapshots are named sw.<window>.<UTC timestamp>; set another `prefix` on this copy
p.toml:20:45: managed prefix ".daily" cannot start an ONTAP snapshot name
  hint: snapwarden names these snapshots <prefix>.<YYYY-MM-DD_HHMM>: start the prefix with a letter, a digit or _ and keep it to 239 bytes
p.toml:21:46: managed prefix "-weekly" cannot start an ONTAP snapshot name
  hint: snapwarden names these snapshots <prefix>.<YYYY-MM-DD_HHMM>: start the prefix with a letter, a digit or _ and keep it to 239 bytes
"#,
    );
}

#[test]
fn a_prefix_is_never_taken_by_ontap_and_snapwarden_both() {
    check(
        r#"[[schedule]]
name = "daily"
cron = "10 0 * * *"
[[snapshot_policy]]
name = "kept"
copies = [{ schedule = "hourly", count = 6 }, { schedule = "daily", count = 2, prefix = "nightly" }]
[[snapshot_policy]]
name = "handed"
copies = [{ schedule = "hourly", count = 24, prefix = "hourly" }, { schedule = "daily", count = 7, prefix = "nightly" }]
[[volume]]
cluster = "c"
svm = "s"
name = "a"
luns = ["/vol/a/lun0"]
snapshot_policy = "kept"
managed_snapshots = "handed"
"#,
        r#"
p.toml:16:21: volume "c/s/a": prefix "hourly" would have two schedulers: ONTAP (snapshot policy "kept", schedule "hourly") and snapwarden (managed snapshot policy "handed", schedule "hourly")
  hint: remove that copy from the volume's ONTAP policy on the cluster and from [[snapshot_policy]] "kept" (snapwarden never edits ONTAP's policies), or keep it with ONTAP and remove it from "handed"
p.toml:16:21: volume "c/s/a": prefix "nightly" would have two schedulers: ONTAP (snapshot policy "kept", schedule "daily") and snapwarden (managed snapshot policy "handed", schedule "daily")
  hint: remove that copy from the volume's ONTAP policy on the cluster and from [[snapshot_policy]] "kept" (snapwarden never edits ONTAP's policies), or keep it with ONTAP and remove it from "handed"
"#,
    );
}

#[test]
fn snapmirror_labels_and_max_defer_are_checked() {
    check(
        r#"[[snapshot_policy]]
name = "m"
max_defer = "soon"
copies = [
  { schedule = "hourly", count = 2, snapmirror_label = "" },
  { schedule = "daily", count = 2, snapmirror_label = "has space" },
  { schedule = "weekly", count = 2, snapmirror_label = "a-label-of-thirty-two-characters" },
  { schedule = "monthly", count = 2, snapmirror_label = "thirty-one-characters-is-enough" },
]
[[schedule]]
name = "daily"
cron = "10 0 * * *"
[[schedule]]
name = "weekly"
cron = "15 0 * * 0"
[[schedule]]
name = "monthly"
cron = "0 0 1 * *"
"#,
        r#"
p.toml:3:13: bad duration for `max_defer`: "soon" is not a duration; write a number and a unit (w, d, h, m, s) such as "90s", "5m", "1h30m", "7d", or an ISO-8601 duration such as "PT30M"
  hint: human units are w, d, h, m, s (largest first); ISO-8601 is PnWnDTnHnMnS
p.toml:5:56: `snapmirror_label` "" is not an ONTAP SnapMirror label
  hint: 1 to 31 of A-Z a-z 0-9 _ . -, for example "hourly"
p.toml:6:55: `snapmirror_label` "has space" is not an ONTAP SnapMirror label
  hint: 1 to 31 of A-Z a-z 0-9 _ . -, for example "hourly"
p.toml:7:56: `snapmirror_label` "a-label-of-thirty-two-characters" is not an ONTAP SnapMirror label
  hint: 1 to 31 of A-Z a-z 0-9 _ . -, for example "hourly"
"#,
    );
}

#[test]
fn names_ontap_would_refuse_are_located_all_at_once_with_the_rule() {
    // A cluster label with a combining accent and a zero-width space, a volume and an SVM ONTAP
    // refuses, LUN paths with a bad LUN and qtree name, and a window name too long for the
    // backing snapshot's name.
    let window = "w".repeat(230);
    check_exact(
        &format!(
            r#"[[cluster]]
name = "prod-e\u0301\u200B"
endpoint = "simulator"
[[schedule]]
name = "hourly"
cron = "5 * * * *"
[[snapshot_policy]]
name = "p"
copies = [{{ schedule = "hourly", count = 6 }}]
[[volume]]
cluster = "prod-e\u0301\u200B"
svm = "1svm"
name = "vol_é中"
luns = ["/vol/vol_é中/lun0"]
snapshot_policy = "p"
[[volume]]
cluster = "prod-e\u0301\u200B"
svm = "svm1"
name = "vol_ok"
luns = ["/vol/vol_ok/lün 0", "/vol/vol_ok/q\u200B/lun1", "/vol/vol_ok/a/b/lun2"]
snapshot_policy = "p"
[[volume]]
cluster = "prod-e\u0301\u200B"
svm = "svm1"
name = "vol_b"
luns = ["/vol/vol_b/lun0"]
snapshot_policy = "p"
[[window]]
name = "{window}"
volumes = ["prod-e\u0301\u200B/svm1/vol_b"]
start = "0 1 * * *"
timezone = "UTC"
expected = "5m"
max = "6m"
"#
        ),
        &format!(
            r#"
p.toml:2:8: cluster name "prod-e\u{{301}}\u{{200b}}" has characters it cannot hold: U+0301 (a combining mark), U+200B (an invisible format character)
  hint: cluster names label volume ids (cluster/svm/volume), logs and metrics: visible characters without spaces or '/', for example "prod-a"; write an accented letter precomposed (é as one character, not e plus a combining accent)
p.toml:12:7: SVM name "1svm" starts with '1', not a letter or _
  hint: ONTAP SVM names are 1 to 47 of A-Z a-z 0-9 . - _, not starting with a digit, . or -, and not "all", for example "svm1" or "svm.example.net"
p.toml:13:8: volume name "vol_é中" has characters it cannot hold: 'é' (U+00E9), '中' (U+4E2D)
  hint: ONTAP volume names are 1 to 203 of A-Z a-z 0-9 _, starting with a letter or _, for example "vol_sql"
p.toml:20:9: LUN path "/vol/vol_ok/lün 0": LUN name "lün 0" has characters it cannot hold: 'ü' (U+00FC), U+0020 (a space)
  hint: ONTAP LUN names are 1 to 255 of A-Z a-z 0-9 - _ {{ }} ., starting with a letter or digit; a LUN path is /vol/<volume>/<lun> or /vol/<volume>/<qtree>/<lun>
p.toml:20:30: LUN path "/vol/vol_ok/q\u{{200b}}/lun1": qtree name "q\u{{200b}}" has characters it cannot hold: U+200B (an invisible format character)
  hint: ONTAP qtree names are at most 64 characters without /; snapwarden takes visible ASCII (no space), for example "q1"
p.toml:20:58: LUN path "/vol/vol_ok/a/b/lun2" has 3 levels below /vol/vol_ok/: ONTAP keeps a LUN at the root of a volume or of a qtree
  hint: LUN paths of this volume look like "/vol/vol_ok/lun0" or "/vol/vol_ok/q1/lun0"
p.toml:29:8: window "{window}": its backing snapshots would be named with 258 bytes ("snapwarden.{window}.YYYYMMDDTHHMMSSZ"), more than the 255 ONTAP allows a snapshot name
  hint: shorten the window's name (or [agent] snapshot_prefix)
"#
        ),
    );
}

#[test]
fn a_window_name_that_fits_a_snapshot_but_not_a_clone_lun_is_refused() {
    // snapwarden.<w>.<16> is 228 bytes; with ".lun_with_a_long_name" the clone's name is 250
    // characters, with a longer LUN name 256.
    let window = "w".repeat(200);
    let policy = |lun: &str| {
        format!(
            "[[window]]\nname = \"{window}\"\nvolumes = [\"c/s/v2\"]\nstart = \"0 1 * * *\"\ntimezone = \"UTC\"\nexpected = \"5m\"\nmax = \"6m\"\n\
             [[volume]]\ncluster = \"c\"\nsvm = \"s\"\nname = \"v2\"\nluns = [\"/vol/v2/{lun}\"]\nsnapshot_policy = \"p\"\n"
        )
    };
    valid(&policy(&"l".repeat(26)));
    check(
        &policy(&"l".repeat(27)),
        &format!(
            r#"
p.toml:2:8: window "{window}": the clone of LUN "{lun}" would be named with 256 characters ("snapwarden.{window}.YYYYMMDDTHHMMSSZ.{lun}"), more than the 255 ONTAP allows a LUN name
  hint: shorten the window's name (or [agent] snapshot_prefix, or the LUN's)
"#,
            lun = "l".repeat(27)
        ),
    );
}

#[test]
fn a_snapshot_prefix_starts_with_a_letter_or_digit() {
    check(
        "[agent]\nsnapshot_prefix = \"_sw\"\n",
        r#"
p.toml:2:19: `snapshot_prefix` "_sw" must start with a letter or digit
  hint: clone LUNs are named after the backing snapshot, and ONTAP's LUN names start with a letter or digit; for example "snapwarden"
"#,
    );
}

#[test]
fn files_are_bounded_each_and_together() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Sparse files: 15 MiB each reads fast. Four fit the 64 MiB total; the fifth does not.
    let names: Vec<String> = (0..5).map(|i| format!("big{i}.toml")).collect();
    for name in &names {
        std::fs::File::create(dir.path().join(name))
            .and_then(|f| f.set_len(15 << 20))
            .expect("a sparse file");
    }
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let main = dir.path().join("main.toml");
    std::fs::write(&main, format!("include = [{}]\n{BASE}", list.join(", "))).expect("write");
    let diags = load(&main).expect_err("over the total");
    let total: Vec<String> = diags
        .iter()
        .filter(|d| d.message.contains("together"))
        .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
        .collect();
    assert_eq!(
        total,
        [format!(
            "1:64: cannot read included file {}: the policy's files would hold more than 64 MiB together",
            dir.path().join("big4.toml").display()
        )]
    );

    // One file over the bound, as an include: refused before it is read, located.
    std::fs::File::create(dir.path().join("huge.toml"))
        .and_then(|f| f.set_len((16 << 20) + 1))
        .expect("a sparse file");
    std::fs::write(&main, format!("include = [\"huge.toml\"]\n{BASE}")).expect("write");
    let diags = load(&main).expect_err("over the bound");
    assert_eq!(diags.len(), 1, "{diags}");
    assert_eq!(
        diags.0[0].to_string(),
        format!(
            "{}:1:12: cannot read included file {}: it holds more than 16 MiB (16777216 bytes)\n  \
             hint: a policy file holds at most 16 MiB and all of a policy's files at most 64 MiB \
             together; check that the path names a policy, or split it with include",
            main.display(),
            dir.path().join("huge.toml").display()
        )
    );
}

/// A policy finds each of its volumes by cluster, SVM and name as a scan of `volumes` does, and
/// nothing else — also in a policy whose volumes grew after the first look-up.
#[test]
fn volumes_are_found_by_cluster_svm_and_name_as_a_scan_finds_them() {
    let mut p = valid(
        r#"
[[cluster]]
name = "d"
endpoint = "simulator"

[[volume]]
cluster = "d"
svm = "s"
name = "v"
luns = ["/vol/v/lun0"]
snapshot_policy = "p"

[[volume]]
cluster = "c"
svm = "t"
name = "v"
luns = ["/vol/v/lun0"]
snapshot_policy = "p"
"#,
    );
    let scan = |p: &Policy, c: &str, s: &str, v: &str| {
        p.volumes
            .iter()
            .position(|x| x.svm == s && x.name == v && p.clusters[x.cluster].name == c)
    };
    let asked = [
        ("c", "s", "v"),
        ("d", "s", "v"),
        ("c", "t", "v"),
        ("d", "t", "v"),
        ("c", "s", "w"),
        ("e", "s", "v"),
    ];
    for (c, s, v) in asked {
        assert_eq!(p.volume_at(c, s, v), scan(&p, c, s, v), "{c}/{s}/{v}");
    }
    assert_eq!(
        asked
            .iter()
            .filter(|(c, s, v)| p.volume_at(c, s, v).is_some())
            .count(),
        3
    );
    let mut added = p.volumes[0].clone();
    added.name = "w".into();
    p.volumes.push(added);
    assert_eq!(p.volume_at("d", "s", "w"), Some(3));
}
