//! `Secret`: a cluster password that never reaches logs, `Debug` or `Display`.
//!
//! Loaded from the policy's [`SecretSource`] (an environment variable or a file); the policy file
//! itself never holds the value.

use std::fmt;
use std::path::PathBuf;

use crate::config::SecretSource;

/// A password or token.
///
/// Invariant: the value is never empty, and `Debug`/`Display` print `***` instead of it; the only
/// way to read it is [`Secret::expose`], which callers use exactly where the value goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// Why a secret could not be loaded; names the variable or file, never the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {var} is not set")]
    EnvMissing { var: String },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("cannot read password file {}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is empty")]
    Empty { origin: String },
}

impl Secret {
    /// Wraps a value. Returns `None` for an empty string (an empty password is a configuration
    /// mistake, not a credential).
    pub fn new(value: impl Into<String>) -> Option<Secret> {
        let value = value.into();
        (!value.is_empty()).then_some(Secret(value))
    }

    /// Loads the secret from an environment variable (taken verbatim) or a file (one trailing
    /// `\n` or `\r\n` removed, as editors and `echo` add one).
    pub fn load(source: &SecretSource) -> Result<Secret, SecretError> {
        match source {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(value) => Secret::new(value).ok_or_else(|| SecretError::Empty {
                    origin: format!("environment variable {var}"),
                }),
                Err(std::env::VarError::NotPresent) => {
                    Err(SecretError::EnvMissing { var: var.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(SecretError::EnvNotUnicode { var: var.clone() })
                }
            },
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                let trimmed = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(&text);
                Secret::new(trimmed).ok_or_else(|| SecretError::Empty {
                    origin: format!("password file {}", path.display()),
                })
            }
        }
    }

    /// The value itself: only for putting it on the wire (HTTP Basic auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("hunter2").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert!(!format!("{s:#?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn file_trims_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "p@ss word \r\n").unwrap();
        let s = Secret::load(&SecretSource::File(path.clone())).unwrap();
        assert_eq!(s.expose(), "p@ss word ");
        std::fs::write(&path, "\n").unwrap();
        let err = Secret::load(&SecretSource::File(path.clone())).unwrap_err();
        assert!(err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn errors_name_the_source() {
        let err = Secret::load(&SecretSource::Env(
            "SNAPWARDEN_TEST_SURELY_UNSET_7f3a".into(),
        ))
        .unwrap_err();
        assert!(err
            .to_string()
            .contains("SNAPWARDEN_TEST_SURELY_UNSET_7f3a"));
        let err =
            Secret::load(&SecretSource::File("/nonexistent/snapwarden/pw".into())).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/snapwarden/pw"));
    }
}
