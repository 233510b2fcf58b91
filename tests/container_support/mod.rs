//! The container image recipe, `deploy/container/Containerfile`, read as its instructions: the
//! base image, the user, the volumes, the entrypoint, the command and the labels, for the tests
//! that hold the Kubernetes manifests (`deploy_kubernetes.rs`) and the built image
//! (`container_image.rs`) to it.
//!
//! Read as a Containerfile is: `\` at a line's end continues it, `#` lines are comments (also
//! between continued lines), an instruction is its first word in any case.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The recipe's path in the repository.
pub fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/container/Containerfile")
}

/// The recipe as its instructions, in order: (instruction in upper case, its arguments).
pub struct Recipe {
    pub instructions: Vec<(String, String)>,
}

impl Recipe {
    pub fn load() -> Recipe {
        let text = std::fs::read_to_string(path()).expect("deploy/container/Containerfile");
        Recipe::parse(&text)
    }

    pub fn parse(text: &str) -> Recipe {
        let mut instructions = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(part) => {
                    current.push_str(part);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    let logical = std::mem::take(&mut current);
                    let (word, rest) = logical
                        .split_once(char::is_whitespace)
                        .unwrap_or((&logical, ""));
                    instructions.push((word.to_ascii_uppercase(), rest.trim().to_string()));
                }
            }
        }
        assert!(current.is_empty(), "the recipe ends in a continued line");
        Recipe { instructions }
    }

    /// The arguments of every `name` instruction.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.instructions
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, a)| a.as_str())
            .collect()
    }

    /// The arguments of the one `name` instruction.
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(
            all.len(),
            1,
            "the recipe has {} {name} instructions",
            all.len()
        );
        all[0]
    }

    /// An exec-form (JSON array) instruction: `ENTRYPOINT`, `CMD`, `VOLUME`.
    pub fn list(&self, name: &str) -> Vec<String> {
        let args = self.one(name);
        serde_json::from_str(args)
            .unwrap_or_else(|e| panic!("{name} {args} is not a JSON array of strings: {e}"))
    }

    /// The default of `ARG name=default`.
    pub fn arg_default(&self, name: &str) -> String {
        self.all("ARG")
            .into_iter()
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("the recipe has no ARG {name}=default"))
            .to_string()
    }

    /// The image named by `FROM`, with its `ARG` default substituted.
    pub fn base(&self) -> String {
        let from = self.one("FROM");
        match from.strip_prefix("${").and_then(|f| f.strip_suffix('}')) {
            Some(arg) => self.arg_default(arg),
            None => from.to_string(),
        }
    }

    /// `USER uid:gid`, numeric (Kubernetes' runAsNonRoot can only check a numeric user).
    pub fn user(&self) -> (u32, u32) {
        let user = self.one("USER");
        let parsed = user
            .split_once(':')
            .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
        parsed.unwrap_or_else(|| panic!("USER {user} is not a numeric uid:gid"))
    }

    /// The value of label `key` (`LABEL key="value" …`, values quoted with `\` escapes or bare).
    pub fn label(&self, key: &str) -> String {
        self.all("LABEL")
            .into_iter()
            .flat_map(label_pairs)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("the recipe has no label {key}"))
    }
}

/// The `key=value` pairs of one `LABEL` instruction.
fn label_pairs(args: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = args.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return out;
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        assert_eq!(chars.next(), Some('='), "LABEL {args}: {key} has no value");
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => panic!("LABEL {args}: unterminated value of {key}"),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        out.push((key, value));
    }
}
