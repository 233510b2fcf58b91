//! `snapwarden init`: its arguments, each checked by the rule the policy applies to the key it
//! becomes; the read of the clusters (GETs only); and the policy written to stdout or, atomically
//! and never over an existing file without `--force`, to `--output-file`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::{EXIT_INVALID, EXIT_OK};
use crate::config::{self, single, ClusterTimezone, Endpoint, SecretSource, TlsVerify};
use crate::error::error_chain;
use crate::init::{self, Listing, Target, WindowArgs};
use crate::ontap::{ClientOverrides, Ontap, RestClient, RetryPolicy, Secret};

/// `--cluster` given at most this many times.
pub const MAX_CLUSTERS: usize = 64;
/// Longest `--cluster` endpoint, in bytes.
const MAX_ENDPOINT_BYTES: usize = 2048;
/// One read of a cluster is a handful of GETs: a dead address should not hold the command for
/// the agent's minute per request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything `init` is asked; clap checks each value on its own by the policy's rule for the
/// key it becomes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// NAME=https://HOST[:PORT]: the policy's name for a cluster and its management address
    /// (repeat for several clusters; they share the credentials and TLS choice).
    #[arg(long = "cluster", value_name = "NAME=URL", required = true, value_parser = parse_cluster)]
    pub clusters: Vec<(String, String)>,
    /// The ONTAP user (a role that may read volumes and LUNs; the agent needs more).
    #[arg(long)]
    pub username: String,
    /// The environment variable holding the password; the policy names the same variable.
    #[arg(
        long,
        required_unless_present = "password_file",
        conflicts_with = "password_file"
    )]
    pub password_env: Option<String>,
    /// The file holding the password; the policy names the same file (as an absolute path).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Trust this CA (PEM) file for the clusters' certificates (policy `ca_file`).
    #[arg(long, conflicts_with_all = ["pin_sha256", "insecure"])]
    pub ca_file: Option<PathBuf>,
    /// Pin the certificate's SHA-256 (policy `pin_sha256`): once for all clusters, or once
    /// per --cluster in the same order.
    #[arg(long, value_parser = parse_pin, conflicts_with = "insecure")]
    pub pin_sha256: Vec<[u8; 32]>,
    /// Do not verify the certificates (policy `insecure = true`).
    #[arg(long)]
    pub insecure: bool,
    /// Only the volumes of this SVM (repeat for several).
    #[arg(long = "svm", value_name = "SVM", value_parser = parse_svm)]
    pub svms: Vec<String>,
    /// The window's name (it becomes part of backing snapshot names).
    #[arg(long, default_value = "nightly", value_parser = parse_window_name)]
    pub window_name: String,
    /// When the backup starts: a 5-field cron in the window's zone (default nightly at 01:00).
    #[arg(long, value_name = "CRON", default_value = "0 1 * * *", value_parser = parse_start)]
    pub window_start: String,
    /// How long the backup usually takes (the default fits between two of the hourly
    /// snapshots of ONTAP's built-in `default` policy once `check` shifts the start).
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_expected)]
    pub expected: String,
    /// The longest the backup may take.
    #[arg(long, value_name = "DURATION", default_value = "45m", value_parser = parse_max)]
    pub max: String,
    /// The window's IANA time zone (default: the zone the first cluster reports).
    #[arg(long, value_parser = parse_timezone)]
    pub timezone: Option<String>,
    /// Write the policy here (atomically) instead of to stdout.
    #[arg(long)]
    pub output_file: Option<PathBuf>,
    /// Replace --output-file when it exists.
    #[arg(long, requires = "output_file")]
    pub force: bool,
}

/// `--cluster NAME=https://HOST[:PORT]`: the name by the policy's cluster-name rule, the
/// endpoint an `https://` origin without credentials, path or query.
pub fn parse_cluster(text: &str) -> Result<(String, String), String> {
    let Some((name, url)) = text.split_once('=') else {
        return Err(format!(
            "{:?} has no '=': write NAME=https://HOST, for example \
             prod-a=https://cluster-a.example.net",
            shorten(text)
        ));
    };
    if name.is_empty() {
        return Err("the cluster name before '=' is empty: write NAME=https://HOST".into());
    }
    single::cluster_name(name)?;
    Ok((name.to_string(), endpoint(url)?))
}

/// The first 80 characters of an argument, for a message about it.
fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(80).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

fn endpoint(url: &str) -> Result<String, String> {
    if url.len() > MAX_ENDPOINT_BYTES {
        return Err(format!(
            "the endpoint is {} bytes long, more than {MAX_ENDPOINT_BYTES}: write https://HOST",
            url.len()
        ));
    }
    if !url.starts_with("https://") {
        let why = if url.starts_with("http://") {
            "ONTAP's REST API is served over HTTPS"
        } else {
            "the endpoint is the cluster's management address"
        };
        return Err(format!(
            "endpoint {:?} is not https://…: {why}; write https://HOST",
            shorten(url)
        ));
    }
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("endpoint {:?} is not a URL: {e}", shorten(url)))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("endpoint {:?} names no host", shorten(url)));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the endpoint carries credentials: give them with --username and --password-env or \
             --password-file (the policy never holds a password)"
                .into(),
        );
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "endpoint {:?} has a path, query or fragment: write the cluster's address only, \
             https://HOST or https://HOST:PORT",
            shorten(url)
        ));
    }
    Ok(parsed.origin().ascii_serialization())
}

/// `--pin-sha256`.
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    single::pin_sha256(text)
}

/// `--window-name`, with the backing snapshot name it becomes.
pub fn parse_window_name(text: &str) -> Result<String, String> {
    single::window_name(text)?;
    single::window_derived_names(init::SNAPSHOT_PREFIX, text, &[])?;
    Ok(text.to_string())
}

/// `--window-start`.
pub fn parse_start(text: &str) -> Result<String, String> {
    single::window_start(text).map(|_| text.to_string())
}

/// `--expected`.
pub fn parse_expected(text: &str) -> Result<String, String> {
    single::window_length("expected", text).map(|_| text.to_string())
}

/// `--max`.
pub fn parse_max(text: &str) -> Result<String, String> {
    single::window_length("max", text).map(|_| text.to_string())
}

/// `--timezone`.
pub fn parse_timezone(text: &str) -> Result<String, String> {
    single::timezone(text).map(|_| text.to_string())
}

/// `--svm`, by ONTAP's SVM naming rule.
pub fn parse_svm(text: &str) -> Result<String, String> {
    single::svm_name(text).map(|()| text.to_string())
}

pub fn run(args: Args) -> u8 {
    match init(args) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("snapwarden init: {e}\nnothing was written");
            EXIT_INVALID
        }
    }
}

fn init(args: Args) -> Result<(), String> {
    let targets = targets(&args)?;
    let window = WindowArgs {
        name: args.window_name.clone(),
        start: args.window_start.clone(),
        expected: args.expected.clone(),
        max: args.max.clone(),
        timezone: args.timezone.clone(),
    };
    let expected = single::window_length("expected", &window.expected)?;
    let max = single::window_length("max", &window.max)?;
    if expected > max {
        return Err(format!(
            "--expected {} is longer than --max {}: max bounds the backup; raise it or lower \
             expected",
            window.expected, window.max
        ));
    }
    if let Some(path) = &args.output_file {
        may_write(path, args.force)?;
    }
    let listings = read_all(&targets)?;
    let draft = init::draft(
        targets.into_iter().zip(listings).collect(),
        &args.svms,
        &window,
    )?;
    let named = args
        .output_file
        .as_deref()
        .map_or("policy.toml".into(), |p| p.to_string_lossy().into_owned());
    let text = init::render(&draft, Utc::now(), &named);
    gate(&text, args.output_file.as_deref(), draft.volumes.len())?;
    match &args.output_file {
        Some(path) => write_atomically(path, &text, args.force),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| format!("cannot write the policy to stdout: {e}"))
        }
    }
}

/// The clusters to read, with the credentials and TLS choice every one of them gets (a pin
/// given once per `--cluster` goes to the cluster in the same place). The password is loaded
/// here, so a missing variable or unreadable file is named before any cluster is asked.
fn targets(args: &Args) -> Result<Vec<Target>, String> {
    if args.clusters.len() > MAX_CLUSTERS {
        return Err(format!(
            "{} --cluster flags: at most {MAX_CLUSTERS}",
            args.clusters.len()
        ));
    }
    for (i, (name, _)) in args.clusters.iter().enumerate() {
        if args.clusters[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("--cluster {name} is given twice: each name once"));
        }
    }
    let pins = args.pin_sha256.len();
    if pins > 1 && pins != args.clusters.len() {
        return Err(format!(
            "{pins} --pin-sha256 for {} --cluster: give one for every cluster (in the same \
             order), or one for all",
            args.clusters.len()
        ));
    }
    if args.username.is_empty() {
        return Err("--username is empty: name the ONTAP user, for example snapwarden".into());
    }
    let password = match (&args.password_env, &args.password_file) {
        (Some(var), None) if !var.is_empty() => SecretSource::Env(var.clone()),
        (Some(_), None) => return Err("--password-env is empty: name a variable".into()),
        (None, Some(file)) => SecretSource::File(absolute(file, "--password-file")?),
        _ => return Err("give exactly one of --password-env and --password-file".into()),
    };
    Secret::load(&password)
        .map_err(|e| format!("cannot load the password: {}", error_chain(&e)))?;
    let ca = match &args.ca_file {
        Some(f) => Some(absolute(f, "--ca-file")?),
        None => None,
    };
    Ok(args
        .clusters
        .iter()
        .enumerate()
        .map(|(i, (name, endpoint))| Target {
            name: name.clone(),
            endpoint: endpoint.clone(),
            username: args.username.clone(),
            password: password.clone(),
            tls: match (&ca, args.pin_sha256.as_slice(), args.insecure) {
                (Some(ca), _, _) => TlsVerify::CaFile(ca.clone()),
                (None, [one], _) => TlsVerify::PinSha256(*one),
                (None, [], true) => TlsVerify::Insecure,
                (None, [], false) => TlsVerify::System,
                (None, pins, _) => TlsVerify::PinSha256(pins[i]),
            },
        })
        .collect())
}

/// `path` made absolute (the policy resolves a relative path against its own directory, not
/// the directory init ran in), as UTF-8 (TOML holds nothing else).
fn absolute(path: &Path, flag: &str) -> Result<PathBuf, String> {
    let abs = std::path::absolute(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    if abs.to_str().is_none() {
        return Err(format!(
            "{flag} {}: the path is not UTF-8, which a policy file cannot hold",
            path.display()
        ));
    }
    Ok(abs)
}

/// Reads every cluster at once; every cluster that cannot be read is named, with its error.
fn read_all(targets: &[Target]) -> Result<Vec<Listing>, String> {
    let overrides = ClientOverrides {
        request_timeout: Some(REQUEST_TIMEOUT),
        retry: Some(RetryPolicy {
            max_retries: 2,
            ..RetryPolicy::default()
        }),
        ..ClientOverrides::default()
    };
    let mut clients: Vec<Arc<dyn Ontap>> = Vec::new();
    for t in targets {
        let cluster = config::Cluster {
            name: t.name.clone(),
            endpoint: Endpoint::Url(t.endpoint.clone()),
            username: t.username.clone(),
            password: Some(t.password.clone()),
            tls: t.tls.clone(),
            timezone: ClusterTimezone::Auto,
            simulator: None,
        };
        let client =
            RestClient::from_cluster(&cluster, overrides.clone()).map_err(|e| error_chain(&e))?;
        clients.push(Arc::new(client));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let results = runtime.block_on(futures_util::future::join_all(
        clients.iter().map(|c| init::read(c.as_ref())),
    ));
    let mut listings = Vec::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(l) => listings.push(l),
            Err(e) => errors.push(error_chain(&e)),
        }
    }
    if errors.is_empty() {
        Ok(listings)
    } else {
        Err(errors.join("\n"))
    }
}

/// Whether the policy may go to `path`: its directory exists, and nothing is there unless
/// `force` (and never a directory).
fn may_write(path: &Path, force: bool) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(format!("--output-file {} is a directory", path.display()))
        }
        Ok(_) if !force => {
            return Err(format!(
                "--output-file {} exists: give --force to replace it",
                path.display()
            ))
        }
        _ => {}
    }
    let dir = parent(path);
    if !dir.is_dir() {
        return Err(format!(
            "--output-file {}: directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    Ok(())
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The written text read back by the validator `check` runs (never a policy it refuses), and
/// within the size a policy file may have.
fn gate(text: &str, output: Option<&Path>, volumes: usize) -> Result<(), String> {
    if text.len() as u64 > config::MAX_FILE_BYTES {
        return Err(format!(
            "the policy would be {} bytes, more than the {} a policy file may hold: narrow it \
             with --svm",
            text.len(),
            config::MAX_FILE_BYTES
        ));
    }
    let at = output.map_or(PathBuf::from("policy.toml"), Path::to_path_buf);
    match config::parse_str(text, &at) {
        Ok(p) if p.volumes.len() == volumes => Ok(()),
        Ok(p) => Err(format!(
            "internal error: the drafted policy holds {} volumes, the text {}",
            volumes,
            p.volumes.len()
        )),
        Err(d) => Err(format!(
            "internal error: the drafted policy does not validate:\n{d}"
        )),
    }
}

/// Writes `text` to a temporary file beside `path`, flushes it to disk, then puts it in place:
/// with `force` by rename (replacing what is there), without by a hard link, which fails when
/// `path` exists (so a file that appeared since [`may_write`] is not replaced either). A failure
/// leaves `path` as it was and removes the temporary file.
fn write_atomically(path: &Path, text: &str, force: bool) -> Result<(), String> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map_or("policy".into(), |n| n.to_string_lossy().into_owned());
    let temp = dir.join(format!(".{name}.init-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
        drop(f);
        if force {
            std::fs::rename(&temp, path)
        } else {
            std::fs::hard_link(&temp, path)
        }
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => format!(
                "--output-file {} exists: give --force to replace it",
                path.display()
            ),
            _ => format!("cannot put the policy at {}: {e}", path.display()),
        })
    })();
    let _ = std::fs::remove_file(&temp);
    if result.is_ok() {
        // The new directory entry on disk too (best effort: not every file system allows it).
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_arguments_are_checked_like_the_policy_keys_they_become() {
        assert_eq!(
            parse_cluster("prod-a=https://cluster-a.example.net:8443/"),
            Ok(("prod-a".into(), "https://cluster-a.example.net:8443".into()))
        );
        let e = |s: &str| parse_cluster(s).unwrap_err();
        assert!(e("prod-a").contains("has no '='"));
        assert!(e("=https://a").contains("name before '=' is empty"));
        assert!(e("prod-a=http://a").contains("served over HTTPS"));
        assert!(e("prod-a=cluster-a").contains("not https://"));
        assert!(e("prod a=https://a").contains("cannot hold"));
        assert!(e(&format!("{}=https://a", "c".repeat(300))).contains("more than 255"));
        assert!(e(&format!("c=https://{}", "a".repeat(3000))).contains("more than 2048"));
        assert!(e("c=https://u:p@a").contains("carries credentials"));
        assert!(e("c=https://a/api").contains("path, query or fragment"));
        assert!(e("c=https://").contains("https://"));
    }

    /// `init`'s arguments as clap reads them.
    fn args(line: &[&str]) -> Result<Args, clap::Error> {
        #[derive(clap::Parser)]
        struct Line {
            #[command(flatten)]
            args: Args,
        }
        use clap::Parser;
        Line::try_parse_from(std::iter::once("init").chain(line.iter().copied())).map(|l| l.args)
    }

    #[test]
    fn pins_go_to_every_cluster_or_one_each_and_passwords_are_named_not_read_into_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "s3cret\n").unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let base = |pins: &[&str]| {
            let mut l = vec![
                "--cluster",
                "x=https://x",
                "--cluster",
                "y=https://y",
                "--username",
                "u",
                "--password-file",
                pass.to_str().unwrap(),
            ];
            for p in pins {
                l.extend(["--pin-sha256", p]);
            }
            args(&l).unwrap()
        };
        let t = targets(&base(&[&a, &b])).unwrap();
        assert_eq!(t[0].tls, TlsVerify::PinSha256([0xaa; 32]));
        assert_eq!(t[1].tls, TlsVerify::PinSha256([0xbb; 32]));
        assert_eq!(t[1].password, SecretSource::File(pass.clone()));
        let t = targets(&base(&[&a])).unwrap();
        assert!(t.iter().all(|t| t.tls == TlsVerify::PinSha256([0xaa; 32])));
        let e = targets(&base(&[&a, &b, &a])).unwrap_err();
        assert!(e.contains("3 --pin-sha256 for 2 --cluster"), "{e}");
        // One kind of TLS choice, one password source.
        assert!(args(&[
            "--cluster",
            "x=https://x",
            "--username",
            "u",
            "--password-env",
            "P",
            "--insecure",
            "--ca-file",
            "ca.pem"
        ])
        .is_err());
        assert!(args(&["--cluster", "x=https://x", "--username", "u"]).is_err());
        let twice = args(&[
            "--cluster",
            "x=https://x",
            "--cluster",
            "x=https://y",
            "--username",
            "u",
            "--password-file",
            pass.to_str().unwrap(),
        ])
        .unwrap();
        assert!(targets(&twice).unwrap_err().contains("given twice"));
    }

    #[test]
    fn an_existing_file_is_not_replaced_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.toml");
        write_atomically(&path, "first\n", false).unwrap();
        let e = write_atomically(&path, "second\n", false).unwrap_err();
        assert!(e.contains("exists: give --force"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\n");
        write_atomically(&path, "second\n", true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        // Only the policy is left in the directory: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(may_write(&path, false).is_err());
        assert!(may_write(dir.path(), true)
            .unwrap_err()
            .contains("is a directory"));
        assert!(may_write(&dir.path().join("no/such.toml"), false)
            .unwrap_err()
            .contains("does not exist"));
    }
}
