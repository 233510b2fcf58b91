//! `draft` and `render` on hand-made listings: what is listed, what is left out and why, and
//! that the written text is a policy the validator accepts with exactly the expected volumes.

use std::path::Path;

use chrono::TimeZone;

use super::*;
use crate::config;

fn target(name: &str) -> Target {
    Target {
        name: name.into(),
        endpoint: format!("https://{name}.example.net"),
        username: "snapwarden".into(),
        password: SecretSource::Env("SNAPWARDEN_PASSWORD".into()),
        tls: TlsVerify::System,
    }
}

fn volume(svm: &str, name: &str) -> VolumeInfo {
    VolumeInfo {
        uuid: format!("{svm}-{name}"),
        name: name.into(),
        svm: svm.into(),
        snapshot_policy: Some("default".into()),
    }
}

fn lun(svm: &str, volume: &str, path: &str, clone: bool) -> LunInfo {
    LunInfo {
        uuid: format!("{svm}-{path}"),
        name: path.into(),
        svm: svm.into(),
        volume_name: volume.into(),
        mapped: true,
        created_as_clone: clone,
        size: Some(1 << 30),
    }
}

fn listing(zone: &str, volumes: Vec<VolumeInfo>, luns: Vec<LunInfo>) -> Listing {
    Listing {
        info: ClusterInfo {
            name: "c".into(),
            uuid: "u".into(),
            version: "9.15.1".into(),
            timezone: zone.into(),
        },
        volumes,
        luns,
    }
}

fn window() -> WindowArgs {
    WindowArgs {
        name: "nightly".into(),
        start: "0 1 * * *".into(),
        expected: "1h".into(),
        max: "2h".into(),
        timezone: None,
    }
}

/// An estate with one of each case: LUNs at the root and in a qtree, a clone LUN, no LUNs, a
/// volume name ONTAP allows but the policy's rule refuses, a name with a line break.
fn estate() -> Vec<(Target, Listing)> {
    let a = listing(
        "Europe/Berlin",
        vec![
            volume("svm1", "vol_sql"),
            volume("svm1", "vol_nfs"),
            volume("svm1", "vol-dash"),
            volume("svm2", "vol_vm"),
            volume("svm2", "vol_x\n[[window]]"),
        ],
        vec![
            lun("svm1", "vol_sql", "/vol/vol_sql/q1/lun1", false),
            lun("svm1", "vol_sql", "/vol/vol_sql/lun0", false),
            lun("svm1", "vol_sql", "/vol/vol_sql/lun0.clone", true),
            lun("svm1", "vol-dash", "/vol/vol-dash/lun0", false),
            lun("svm2", "vol_vm", "/vol/vol_vm/lun0", false),
            lun(
                "svm2",
                "vol_x\n[[window]]",
                "/vol/vol_x\n[[window]]/l",
                false,
            ),
        ],
    );
    let b = listing(
        "UTC",
        vec![volume("svm1", "vol_sql")],
        vec![lun("svm1", "vol_sql", "/vol/vol_sql/lun0", false)],
    );
    vec![(target("prod-a"), a), (target("prod-b"), b)]
}

/// The volumes of a parsed policy: (id, LUNs).
fn listed(policy: &config::Policy) -> Vec<(String, Vec<String>)> {
    (0..policy.volumes.len())
        .map(|vi| (policy.volume_id(vi), policy.volumes[vi].luns.clone()))
        .collect()
}

fn written(draft: &Draft) -> (String, config::Policy) {
    let at = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let text = render(draft, at, "policy.toml");
    let policy = config::parse_str(&text, Path::new("policy.toml"))
        .unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
    (text, policy)
}

use chrono::Utc;

#[test]
fn the_policy_lists_volumes_with_luns_and_says_what_it_left_out() {
    let draft = draft(estate(), &[], &window()).unwrap();
    let (text, policy) = written(&draft);
    assert_eq!(
        listed(&policy),
        vec![
            (
                "prod-a/svm1/vol_sql".to_string(),
                vec![
                    "/vol/vol_sql/lun0".to_string(),
                    "/vol/vol_sql/q1/lun1".to_string()
                ]
            ),
            (
                "prod-a/svm2/vol_vm".to_string(),
                vec!["/vol/vol_vm/lun0".to_string()]
            ),
            (
                "prod-b/svm1/vol_sql".to_string(),
                vec!["/vol/vol_sql/lun0".to_string()]
            ),
        ]
    );
    assert_eq!(policy.windows.len(), 1);
    assert_eq!(policy.windows[0].volumes, vec![0, 1, 2]);
    assert_eq!(policy.windows[0].timezone, chrono_tz::Europe::Berlin);
    assert_eq!(
        policy.clusters[0].password,
        Some(SecretSource::Env("SNAPWARDEN_PASSWORD".into()))
    );
    assert!(policy
        .volumes
        .iter()
        .all(|v| v.schedules == config::VolumeSchedules::Ontap));
    // Said, not silently dropped.
    assert!(
        text.contains("Not listed: LUN /vol/vol_sql/lun0.clone"),
        "{text}"
    );
    assert!(text.contains("#   prod-a/svm1/vol-dash:"), "{text}");
    assert!(
        text.contains("volume name \"vol-dash\" has characters it cannot hold"),
        "{text}"
    );
    assert!(text.contains("#     svm1/vol_nfs"), "{text}");
    // The line break in a reported name stays inside its comment.
    assert!(
        text.contains("prod-a/svm2/vol_x\\u{a}[[window]]:"),
        "{text}"
    );
    assert!(text.contains("clusters report different zones (Europe/Berlin, UTC)"));
    assert!(text.contains("ONTAP keeps taking its scheduled snapshots"));
}

#[test]
fn svm_restricts_and_an_unknown_svm_is_an_error() {
    let draft = draft(estate(), &["svm2".into()], &window()).unwrap();
    let (_, policy) = written(&draft);
    assert_eq!(
        listed(&policy),
        vec![(
            "prod-a/svm2/vol_vm".to_string(),
            vec!["/vol/vol_vm/lun0".to_string()]
        )]
    );
    let e = super::draft(estate(), &["svm9".into()], &window()).unwrap_err();
    assert!(
        e.contains("--svm \"svm9\"") && e.contains("SVMs with volumes: svm1, svm2"),
        "{e}"
    );
}

#[test]
fn nothing_to_list_is_an_error_naming_what_was_left_out() {
    let only_bad = vec![(
        target("prod-a"),
        listing(
            "UTC",
            vec![volume("svm1", "vol-dash"), volume("svm1", "vol_nfs")],
            vec![lun("svm1", "vol-dash", "/vol/vol-dash/lun0", false)],
        ),
    )];
    let e = draft(only_bad, &[], &window()).unwrap_err();
    assert!(
        e.contains("cluster prod-a: no volume holds a LUN") && e.contains("prod-a/svm1/vol-dash"),
        "{e}"
    );
}

#[test]
fn a_zone_the_window_cannot_take_asks_for_timezone() {
    let odd = vec![(
        target("prod-a"),
        listing(
            "CET-1CEST",
            vec![volume("svm1", "v")],
            vec![lun("svm1", "v", "/vol/v/l", false)],
        ),
    )];
    let e = draft(odd.clone(), &[], &window()).unwrap_err();
    assert!(e.contains("--timezone") && e.contains("CET-1CEST"), "{e}");
    let given = WindowArgs {
        timezone: Some("Europe/Paris".into()),
        ..window()
    };
    let (_, policy) = written(&draft(odd, &[], &given).unwrap());
    assert_eq!(policy.windows[0].timezone, chrono_tz::Europe::Paris);
}

#[test]
fn a_lun_whose_clone_name_would_be_too_long_is_left_out() {
    let long = format!("/vol/v/{}", "l".repeat(240));
    let estate = vec![(
        target("prod-a"),
        listing(
            "UTC",
            vec![volume("svm1", "v")],
            vec![
                lun("svm1", "v", &long, false),
                lun("svm1", "v", "/vol/v/lun0", false),
            ],
        ),
    )];
    let draft = draft(estate, &[], &window()).unwrap();
    let (text, policy) = written(&draft);
    assert_eq!(policy.volumes[0].luns, vec!["/vol/v/lun0".to_string()]);
    assert!(
        text.contains("more than the 255 ONTAP allows a LUN name"),
        "{text}"
    );
}

#[test]
fn credentials_and_tls_are_written_as_references() {
    let mut estate = estate();
    estate.truncate(1);
    estate[0].0.password = SecretSource::File("/etc/snapwarden/prod-a.pass".into());
    estate[0].0.tls = TlsVerify::PinSha256([0xab; 32]);
    let (text, policy) = written(&draft(estate, &[], &window()).unwrap());
    assert_eq!(
        policy.clusters[0].password,
        Some(SecretSource::File("/etc/snapwarden/prod-a.pass".into()))
    );
    assert_eq!(policy.clusters[0].tls, TlsVerify::PinSha256([0xab; 32]));
    assert!(!text.contains("password ="), "{text}");
    // Whatever a variable is called, TOML quoting keeps it one value.
    let mut odd = self::estate();
    let var = "PASS\"WORD\\\u{7}\n = 1";
    odd[0].0.password = SecretSource::Env(var.into());
    let (_, policy) = written(&draft(odd, &[], &window()).unwrap());
    assert_eq!(
        policy.clusters[0].password,
        Some(SecretSource::Env(var.into()))
    );
    let mut insecure = self::estate();
    insecure[0].0.tls = TlsVerify::Insecure;
    let (_, policy) = written(&draft(insecure, &[], &window()).unwrap());
    assert_eq!(policy.clusters[0].tls, TlsVerify::Insecure);
}
