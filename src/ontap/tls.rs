//! TLS settings for the REST client: builds the rustls `ClientConfig` for a CA file, a SHA-256
//! leaf-certificate pin, or the explicit insecure mode.
//!
//! Every config is built with an explicit crypto provider (aws-lc-rs, the one reqwest 0.13 enables),
//! so nothing depends on a process-wide default provider being installed.
//!
//! Why pinning needs its own verifier: ONTAP clusters ship self-signed certificates, and rustls
//! (webpki) rejects a self-signed certificate marked `CA:TRUE` when it is also the server's own
//! certificate (`CaUsedAsEndEntity`), even when the same certificate is the trust anchor; one
//! without `CA:TRUE` is accepted as its own CA (both measured in `ca_file_with_self_signed_certificate`
//! in the client tests). The pin verifier accepts exactly the leaf whose SHA-256 (over its DER)
//! matches, whatever its extensions, and still checks the handshake signatures with the provider's
//! algorithms, so the peer must hold the key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::config::TlsVerify;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file {}", path.display())]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CA file {} holds no usable PEM certificate: {detail}", path.display())]
    BadCaFile { path: PathBuf, detail: String },
    #[error("cannot build the TLS configuration")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every config uses (aws-lc-rs, as enabled through reqwest 0.13).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls config for `verify`, or `None` for [`TlsVerify::System`], where reqwest's own
/// default (platform verifier with the same provider) is the right answer.
///
/// [`TlsVerify::Insecure`] logs a warning every time it is built (that is, at every start).
pub fn client_config(cluster: &str, verify: &TlsVerify) -> Result<Option<ClientConfig>, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        TlsVerify::System => return Ok(None),
        TlsVerify::CaFile(path) => {
            let roots = load_roots(path)?;
            builder
                .with_root_certificates(Arc::new(roots))
                .with_no_client_auth()
        }
        TlsVerify::PinSha256(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(LeafVerifier {
                accept: Accept::Pinned(*pin),
                provider,
            }))
            .with_no_client_auth(),
        TlsVerify::Insecure => {
            tracing::warn!(
                cluster,
                "TLS certificate verification is DISABLED for this cluster (insecure = true); \
                 anyone on the path can read the password; pin the certificate with pin_sha256"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LeafVerifier {
                    accept: Accept::Any,
                    provider,
                }))
                .with_no_client_auth()
        }
    };
    Ok(Some(config))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::ReadCaFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError::BadCaFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| TlsError::BadCaFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::BadCaFile {
            path: path.to_path_buf(),
            detail: "no CERTIFICATE block found".into(),
        });
    }
    Ok(roots)
}

/// SHA-256 over a certificate's DER: the value `pin_sha256` holds.
pub fn fingerprint(cert: &[u8]) -> [u8; 32] {
    Sha256::digest(cert).into()
}

/// Lower-case hex with `:` separators, as `openssl x509 -fingerprint -sha256` prints it.
pub fn format_fingerprint(fp: &[u8; 32]) -> String {
    fp.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The presented leaf certificate is not the pinned one.
#[derive(Debug)]
pub struct PinMismatch {
    pub expected: [u8; 32],
    pub presented: [u8; 32],
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "server certificate SHA-256 {} does not match pin_sha256 {}",
            format_fingerprint(&self.presented),
            format_fingerprint(&self.expected)
        )
    }
}

impl std::error::Error for PinMismatch {}

/// Which leaf certificates a [`LeafVerifier`] accepts.
#[derive(Debug, Clone, Copy)]
enum Accept {
    /// Exactly the certificate whose SHA-256 equals the pin.
    Pinned([u8; 32]),
    /// Any certificate (`insecure = true`).
    Any,
}

/// Verifies the leaf certificate by pin (or not at all, when insecure).
///
/// Invariant: the host name and validity dates are not checked (a pin names one certificate,
/// which is a stronger statement); handshake signatures are always verified with the provider's
/// algorithms, so the server must own the presented certificate's key.
#[derive(Debug)]
struct LeafVerifier {
    accept: Accept,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LeafVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = match self.accept {
            Accept::Any => return Ok(ServerCertVerified::assertion()),
            Accept::Pinned(pin) => pin,
        };
        let presented = fingerprint(end_entity.as_ref());
        if presented == pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                    expected: pin,
                    presented,
                }))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
