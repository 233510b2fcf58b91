//! The Debian package: `cargo deb` packs the test build's binary (`--profile dev --no-build`, so
//! CI compiles nothing twice), and the real `dpkg` installs it into a throwaway root with its own
//! database, upgrades it over a locally edited policy, removes and purges it. Checked: every file
//! in place with its mode, the policy registered as a conffile and kept through upgrade and
//! removal, the unit and dashboards as in the repository, `snapwarden --version` from the root.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// cargo-deb, as `scripts/test` installs it (pinned, under `target/`).
fn cargo_deb() -> PathBuf {
    let path = std::env::var_os("SNAPWARDEN_TEST_CARGO_DEB").unwrap_or_else(|| {
        panic!(
            "SNAPWARDEN_TEST_CARGO_DEB is not set: run scripts/test, which installs cargo-deb \
             (cargo install --locked cargo-deb --version 3.8.0 --root target/tools/cargo-deb) \
             and points this variable at it"
        )
    });
    PathBuf::from(path)
}

/// Runs `cmd`; panics with everything it printed when it fails, returns its stdout otherwise.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    meta.permissions().mode() & 0o7777
}

/// Every file under `dir`, by its path relative to `dir`, with its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, read(&path));
            }
        }
    }
    out
}

/// A throwaway root for `dpkg --root`: an empty database that knows only libc6, copied from the
/// host's (the package's one dependency, `Depends: libc6 (>= …)`, is then checked for real).
fn throwaway_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let admin = root.join("var/lib/dpkg");
    for sub in ["info", "updates"] {
        std::fs::create_dir_all(admin.join(sub)).unwrap();
    }
    std::fs::create_dir_all(root.join("var/log")).unwrap();
    let libc = run(Command::new("dpkg-query").args(["-s", "libc6"]));
    std::fs::write(admin.join("status"), format!("{}\n", libc.trim_end())).unwrap();
    // libc6's files are not in this root; an empty list keeps dpkg from warning about it.
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    std::fs::write(admin.join(format!("info/libc6:{}.list", arch.trim())), "").unwrap();
    root
}

/// `dpkg --root <root> <args>`, logging into the root rather than the host's /var/log.
fn dpkg(root: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()))
        .args(args);
    run(&mut cmd)
}

/// `dpkg-query --admindir <root's> <args>`.
fn query(root: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("dpkg-query");
    cmd.arg(format!(
        "--admindir={}",
        root.join("var/lib/dpkg").display()
    ))
    .args(args);
    run(&mut cmd)
}

/// `cargo deb` on the test build: the one `.deb` it wrote into `out`.
fn build_deb(out: &Path) -> PathBuf {
    run(Command::new(cargo_deb())
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        // The debug binary `cargo test` has just built (cargo-deb 3.8 warns that it prefers
        // release profiles); --fast: packing 40 MB with xz's best setting would take a minute.
        .args([
            "--profile",
            "dev",
            "--no-build",
            "--strip",
            "--fast",
            "--locked",
        ])
        .arg("--output")
        .arg(out));
    let debs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "cargo deb wrote {debs:?}");
    debs[0].clone()
}

#[test]
fn deb_installs_keeps_its_edited_policy_and_purges_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_deb(dir.path());
    let root = throwaway_root(dir.path());
    let deb = deb.to_str().unwrap();

    dpkg(&root, &["-i", deb]);
    assert_eq!(
        query(&root, &["-W", "-f=${db:Status-Abbrev}", "snapwarden"]).trim(),
        "ii",
        "snapwarden is not installed"
    );

    // The agent runs from the root and is the version this test was built as.
    let bin = root.join("usr/bin/snapwarden");
    assert_eq!(mode(&bin), 0o755);
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("snapwarden {}", env!("CARGO_PKG_VERSION"))
    );

    // The policy is config/minimal.toml, registered as the package's one conffile.
    let policy = root.join("etc/snapwarden/policy.toml");
    assert_eq!(read(&policy), read(&repo().join("config/minimal.toml")));
    assert_eq!(mode(&policy), 0o644);
    let conffiles = query(&root, &["-W", "-f=${Conffiles}", "snapwarden"]);
    let listed: Vec<&str> = conffiles
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(listed, ["/etc/snapwarden/policy.toml"]);

    // The unit is the repository's, and the binary its ExecStart= runs is the installed one.
    let unit = root.join("usr/lib/systemd/system/snapwarden.service");
    let unit_text = String::from_utf8(read(&unit)).unwrap();
    assert_eq!(
        unit_text,
        String::from_utf8(read(&repo().join("deploy/systemd/snapwarden.service"))).unwrap()
    );
    let exec = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .and_then(|l| l.split_whitespace().next())
        .expect("the unit has an ExecStart=");
    assert_eq!(root.join(exec.trim_start_matches('/')), bin);

    // dashboards/, file for file, and nothing else.
    assert_eq!(
        files_under(&root.join("usr/share/snapwarden/dashboards")),
        files_under(&repo().join("dashboards"))
    );
    assert_eq!(
        read(&root.join("usr/share/doc/snapwarden/README.md")),
        read(&repo().join("README.md"))
    );
    // The pages README.md links to sit beside it, at the same relative paths.
    assert_eq!(
        files_under(&root.join("usr/share/doc/snapwarden/docs")),
        files_under(&repo().join("docs"))
    );

    // An admin edits the policy; installing the package again keeps the edit (a conffile the
    // admin changed and the package did not is never replaced, and dpkg does not ask).
    let mut edited = read(&policy);
    edited.extend_from_slice(b"# edited by the admin\n");
    std::fs::write(&policy, &edited).unwrap();
    dpkg(&root, &["-i", deb]);
    assert_eq!(
        read(&policy),
        edited,
        "the upgrade replaced the edited policy"
    );

    // Removing keeps the configuration (state `rc`), purging removes it.
    dpkg(&root, &["--remove", "snapwarden"]);
    assert!(!bin.exists() && !unit.exists());
    assert_eq!(read(&policy), edited, "removal lost the edited policy");
    assert_eq!(
        query(&root, &["-W", "-f=${db:Status-Abbrev}", "snapwarden"]).trim(),
        "rc"
    );
    dpkg(&root, &["--purge", "snapwarden"]);
    assert!(!policy.exists(), "purge left {}", policy.display());
    assert!(!root.join("usr/share/snapwarden").exists());
}
