//! The policy's files through the binary: a device, a FIFO or a symbolic link to one, as the main
//! file or as an include, is refused at once by `check` and `run` (exit 2, the file named, the
//! include located) instead of blocking or reading without end. Every child runs under a 2 GiB
//! address-space limit and is waited on with a bound, then killed: a regression fails the test,
//! never the machine.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

mod process_support;

use process_support::output_within;

/// How long a refusal may take: it is immediate; the bound only covers a loaded machine.
const BOUND: Duration = Duration::from_secs(15);

/// Runs the binary with `args` under a 2 GiB address-space limit; panics when it has not ended
/// within [`BOUND`] (and kills it).
fn bounded(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_snapwarden"));
    cmd.args(args);
    // SAFETY: setrlimit(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 2 << 30,
                rlim_max: 2 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    output_within(cmd, BOUND)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A FIFO at `path` (nobody ever writes to it).
fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// A valid policy (embedded simulator, one volume) with `head` in front of it.
fn policy(head: &str) -> String {
    format!(
        "{head}\n[[cluster]]\nname = \"lab\"\nendpoint = \"simulator\"\ntimezone = \"UTC\"\n\
         [[schedule]]\nname = \"hourly\"\ncron = \"5 * * * *\"\n\
         [[snapshot_policy]]\nname = \"p\"\ncopies = [{{ schedule = \"hourly\", count = 6 }}]\n\
         [[volume]]\ncluster = \"lab\"\nsvm = \"svm1\"\nname = \"vol_a\"\nluns = [\"/vol/vol_a/lun0\"]\nsnapshot_policy = \"p\"\n"
    )
}

#[test]
fn check_refuses_a_device_as_the_policy_at_once() {
    for device in ["/dev/zero", "/dev/urandom"] {
        let o = bounded(&["check", device, "--offline"]);
        assert_eq!(o.status.code(), Some(2), "{device}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "{device}: cannot read the policy file: it is a character device, not a regular file"
            )),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn an_include_of_a_device_is_refused_at_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("policy.toml");
    std::fs::write(&main, policy("include = [\"/dev/zero\"]")).unwrap();
    let o = bounded(&["check", main.to_str().unwrap(), "--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{}:1:12: cannot read included file /dev/zero: it is a character device, not a regular file",
            main.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("hint: a policy file is a regular file"));
}

#[test]
fn a_fifo_is_refused_as_the_policy_as_an_include_and_behind_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    let o = bounded(&["check", fifo.to_str().unwrap(), "--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{}: cannot read the policy file: it is a FIFO (named pipe), not a regular file",
            fifo.display()
        )),
        "{}",
        stderr(&o)
    );
    // The agent does not start on it either.
    let state = dir.path().join("state");
    let o = bounded(&[
        "run",
        "--config",
        fifo.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("FIFO"), "{}", stderr(&o));

    // Included through a symbolic link, on the second line.
    std::os::unix::fs::symlink(&fifo, dir.path().join("link.toml")).unwrap();
    let main = dir.path().join("policy.toml");
    std::fs::write(&main, policy("# windows\ninclude = [\"link.toml\"]")).unwrap();
    let o = bounded(&["check", main.to_str().unwrap(), "--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{}:2:12: cannot read included file {}: it is a FIFO (named pipe), not a regular file",
            main.display(),
            dir.path().join("link.toml").display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_symlink_to_a_regular_file_is_read_and_an_oversized_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.toml");
    std::fs::write(&real, policy("")).unwrap();
    let link = dir.path().join("policy.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let o = bounded(&["check", link.to_str().unwrap(), "--offline"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A sparse file one byte over 16 MiB: refused before it is read.
    let big = dir.path().join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    let o = bounded(&["check", big.to_str().unwrap(), "--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{}: cannot read the policy file: it holds more than 16 MiB (16777216 bytes)",
            big.display()
        )),
        "{}",
        stderr(&o)
    );
}
