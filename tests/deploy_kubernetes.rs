//! `deploy/kubernetes/`: every manifest passes `kubernetes-validate --strict` against the
//! Kubernetes 1.37 schemas, the single-replica ConfigMap's policy passes `snapwarden check
//! --offline`, and each Deployment fits its policy, Secret, Service and volumes (listen address
//! off loopback with a token, ports, probes, mounts, non-root, read-only root). The HA variant's
//! policy is the single replica's with an `[ha]` block in front.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use snapwarden::config::{Policy, SecretSource};

/// The Kubernetes release whose schemas the manifests are validated against (kubernetes-validate
/// 1.37.0 ships them).
const KUBERNETES: &str = "1.37.0";

fn kube_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// The venv's python (`scripts/test` installs kubernetes-validate and PyYAML into it).
fn python() -> PathBuf {
    let python = std::env::var_os("SNAPWARDEN_TEST_PYTHON").unwrap_or_else(|| {
        panic!(
            "SNAPWARDEN_TEST_PYTHON is not set: run scripts/test, which installs \
             kubernetes-validate==1.37.0 (PyPI) into target/py-venv and points this variable at \
             its python"
        )
    });
    PathBuf::from(python)
}

/// `kubernetes-validate --strict` for `KUBERNETES` on `files`: (success, what it printed).
fn kubernetes_validate(files: &[PathBuf]) -> (bool, String) {
    let tool = python().with_file_name("kubernetes-validate");
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", KUBERNETES])
        .args(files)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} ({e}): run scripts/test, which installs kubernetes-validate into the venv",
                tool.display()
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every `.yaml` under `deploy/kubernetes/`, sorted.
fn manifests() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![kube_dir()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The one document of a manifest, as JSON (PyYAML reads it; the crate has no YAML parser).
fn manifest(rel: &str) -> Value {
    let path = kube_dir().join(rel);
    let out = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(docs.len(), 1, "{rel}: one document per file");
    docs.into_iter().next().unwrap()
}

/// The keys of `path`: object keys and array indices separated by dots, `\\.` a dot in a key.
fn keys(path: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = path.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => out.last_mut().unwrap().extend(chars.next()),
            '.' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(ch),
        }
    }
    out
}

/// `v[path]` (see `keys`); fails when absent.
fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in keys(path) {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key.as_str()],
        };
        assert!(!cur.is_null(), "{path}: no {key}");
    }
    cur
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    at(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

/// The element of array `list` whose `key` is `value`.
fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key] == value)
        .unwrap_or_else(|| panic!("no element with {key} = {value} in {list}"))
}

/// The ConfigMap's `policy.toml`, written into `dir` and loaded with the product's loader.
fn policy_of(configmap: &Value, dir: &Path) -> (PathBuf, String, Policy) {
    let text = str_at(configmap, "data.policy\\.toml").to_string();
    let path = dir.join("policy.toml");
    std::fs::write(&path, &text).unwrap();
    let policy = snapwarden::config::load(&path)
        .unwrap_or_else(|d| panic!("the ConfigMap's policy does not load: {d:?}"));
    (path, text, policy)
}

#[test]
fn every_manifest_validates_against_kubernetes_schemas() {
    let files = manifests();
    assert!(files.len() >= 7, "{files:?}");
    let (ok, said) = kubernetes_validate(&files);
    assert!(ok, "kubernetes-validate:\n{said}");
    for f in &files {
        assert!(
            said.lines()
                .any(|l| l.contains(&*f.to_string_lossy()) && l.contains("passed")),
            "{} was not validated:\n{said}",
            f.display()
        );
    }
    // The control: the same Deployment with a misspelled field and with a wrong type fails,
    // so the schemas are really in force (and strict).
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(kube_dir().join("deployment.yaml")).unwrap();
    for (from, to) in [
        ("readOnlyRootFilesystem", "readOnlyRootFileSystem"),
        ("replicas: 1", "replicas: one"),
    ] {
        assert!(good.contains(from));
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, good.replace(from, to)).unwrap();
        let (ok, said) = kubernetes_validate(&[bad]);
        assert!(!ok, "kubernetes-validate accepted {to}:\n{said}");
    }
}

#[test]
fn single_replica_policy_passes_check_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _, _) = policy_of(&manifest("configmap.yaml"), dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_snapwarden"))
        .args(["check", "--offline"])
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Exit 0: valid and no conflict predicted for the week.
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("no conflicts predicted"), "{said}");
}

#[test]
fn ha_policy_is_the_single_replica_policy_with_an_ha_block() {
    let single = str_at(&manifest("configmap.yaml"), "data.policy\\.toml").to_string();
    let ha = str_at(&manifest("ha/configmap.yaml"), "data.policy\\.toml").to_string();
    let (begin, end) = ("# --- HA: begin ---\n", "# --- HA: end ---\n\n");
    let start = ha.find(begin).expect("the HA block's begin marker");
    let stop = ha.find(end).expect("the HA block's end marker") + end.len();
    assert_eq!(start, 0, "the HA block comes first");
    let block = &ha[start..stop];
    assert!(block.contains("[ha]") && block.contains("backend = \"etcd\""));
    assert_eq!(
        &ha[stop..],
        single,
        "ha/configmap.yaml's policy drifted from configmap.yaml's"
    );
}

/// A Deployment against its ConfigMap, the Secret and the Service.
fn check_deployment(deployment: &str, configmap: &str, replicas: u64, strategy: &str) {
    let dir = tempfile::tempdir().unwrap();
    let dep = manifest(deployment);
    let cm = manifest(configmap);
    let secret = manifest("secret.yaml");
    let service = manifest("service.yaml");
    let (_, _, policy) = policy_of(&cm, dir.path());

    assert_eq!(at(&dep, "spec.replicas"), replicas);
    assert_eq!(str_at(&dep, "spec.strategy.type"), strategy);
    let labels = at(&dep, "spec.template.metadata.labels");
    assert_eq!(at(&dep, "spec.selector.matchLabels"), labels);
    assert_eq!(at(&service, "spec.selector"), labels);
    let pod = at(&dep, "spec.template.spec");
    let containers = at(pod, "containers").as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];

    // The command line: the policy and the state directory.
    let args: Vec<&str> = at(c, "args")
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "run");
    let after = |flag: &str| {
        let i = args.iter().position(|a| *a == flag).unwrap();
        Path::new(args[i + 1])
    };
    let config = after("--config");
    let state = after("--state-dir");
    assert_eq!(state, policy.agent.state_dir);

    // Mounts: the policy's directory is the whole ConfigMap (a subPath mount would never see
    // the kubelet's `..data` swap, so hot reload would not happen).
    let volumes = at(pod, "volumes");
    let mounts = at(c, "volumeMounts");
    let mounted = |dir: &Path| {
        let m = find(mounts, "mountPath", dir.to_str().unwrap());
        assert!(
            m.get("subPath").is_none(),
            "{dir:?} is mounted with subPath"
        );
        find(volumes, "name", str_at(m, "name")).clone()
    };
    let policy_volume = mounted(config.parent().unwrap());
    assert_eq!(
        str_at(&policy_volume, "configMap.name"),
        str_at(&cm, "metadata.name")
    );
    let key = config.file_name().unwrap().to_str().unwrap();
    assert!(
        at(&cm, "data").get(key).is_some(),
        "the ConfigMap has no {key}"
    );
    let state_volume = mounted(state);
    if strategy == "Recreate" {
        let pvc = manifest("pvc.yaml");
        assert_eq!(
            str_at(&state_volume, "persistentVolumeClaim.claimName"),
            str_at(&pvc, "metadata.name")
        );
    } else {
        assert!(state_volume.get("emptyDir").is_some(), "{state_volume}");
    }
    // The root file system is read-only: every place the agent writes is a volume.
    assert!(mounted(Path::new("/tmp")).get("emptyDir").is_some());

    // Off loopback, mutating endpoints need the bearer token: a file from the Secret.
    let listen: SocketAddr = policy.agent.listen;
    assert!(
        listen.ip().is_unspecified(),
        "[agent] listen {listen} is not reachable from outside the pod"
    );
    let token = policy
        .agent
        .token_file
        .as_ref()
        .expect("[agent] token_file");
    let secret_volume = mounted(token.parent().unwrap());
    assert_eq!(
        str_at(&secret_volume, "secret.secretName"),
        str_at(&secret, "metadata.name")
    );
    let file = token.file_name().unwrap().to_str().unwrap();
    let item = find(at(&secret_volume, "secret.items"), "path", file);
    // Shipped empty: the agent refuses an empty token file, so nothing runs on a known token.
    assert_eq!(str_at(&secret, "stringData.api-token"), "");
    let secret_keys: BTreeSet<&String> = at(&secret, "stringData")
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert!(secret_keys.contains(&str_at(item, "key").to_string()));
    // Every password from the environment comes from a key of the Secret.
    let env = at(c, "env");
    for cluster in &policy.clusters {
        if let Some(SecretSource::Env(var)) = &cluster.password {
            let e = find(env, "name", var);
            assert_eq!(
                str_at(e, "valueFrom.secretKeyRef.name"),
                str_at(&secret, "metadata.name")
            );
            let key = str_at(e, "valueFrom.secretKeyRef.key").to_string();
            assert!(secret_keys.contains(&key), "the Secret has no {key}");
        }
    }

    // One port, the policy's; the Service, the probes and the scrape annotations use it.
    let port = find(at(c, "ports"), "name", "http");
    assert_eq!(at(port, "containerPort"), listen.port());
    assert_eq!(str_at(&service, "spec.ports.0.targetPort"), "http");
    assert_eq!(str_at(c, "livenessProbe.httpGet.path"), "/healthz");
    assert_eq!(str_at(c, "livenessProbe.httpGet.port"), "http");
    assert_eq!(str_at(c, "readinessProbe.httpGet.path"), "/readyz");
    assert_eq!(str_at(c, "readinessProbe.httpGet.port"), "http");
    let notes = at(&dep, "spec.template.metadata.annotations");
    assert_eq!(str_at(notes, "prometheus\\.io/scrape"), "true");
    assert_eq!(
        str_at(notes, "prometheus\\.io/port"),
        listen.port().to_string()
    );
    assert_eq!(str_at(notes, "prometheus\\.io/path"), "/metrics");

    // Non-root, read-only root, no privilege escalation, bounded resources.
    assert_eq!(at(pod, "securityContext.runAsNonRoot"), true);
    assert_ne!(at(pod, "securityContext.runAsUser"), 0);
    assert_eq!(at(c, "securityContext.readOnlyRootFilesystem"), true);
    assert_eq!(at(c, "securityContext.allowPrivilegeEscalation"), false);
    at(c, "resources.requests.cpu");
    at(c, "resources.requests.memory");
    at(c, "resources.limits.memory");
    // SIGTERM leaves the agent its shutdown_timeout to release cycles in flight.
    let grace = at(pod, "terminationGracePeriodSeconds").as_i64().unwrap();
    assert!(grace > policy.agent.shutdown_timeout.num_seconds());
}

#[test]
fn single_replica_deployment_fits_its_policy_secret_and_service() {
    check_deployment("deployment.yaml", "configmap.yaml", 1, "Recreate");
}

#[test]
fn ha_deployment_fits_its_policy_secret_and_service() {
    check_deployment(
        "ha/deployment.yaml",
        "ha/configmap.yaml",
        2,
        "RollingUpdate",
    );
}
