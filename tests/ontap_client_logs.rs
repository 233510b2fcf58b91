//! The REST client's debug log names each request (method, path, status, elapsed) and never the
//! credentials.
//!
//! A test binary of its own: tracing caches callsite interest process-wide, so capturing logs
//! with a thread-local subscriber is racy while other tests run on parallel threads.

use std::sync::{Arc, Mutex};

use base64::Engine;
use snapwarden::ontap::{ClientOptions, Ontap, RestClient, Secret};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A `MakeWriter` that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn debug_logs_name_the_request_but_never_the_credentials() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/cluster/licensing/licenses/flexclone"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let options = ClientOptions::new(
        "prod-a",
        server.uri(),
        "snapwarden",
        Secret::new("s3cret-pw").unwrap(),
    );
    let client = RestClient::new(options).unwrap();
    client.license("flexclone").await.unwrap();

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("ONTAP request"))
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    for expected in [
        "method=GET",
        "/api/cluster/licensing/licenses/flexclone",
        "status=404",
        "elapsed_ms=",
        "cluster=prod-a",
    ] {
        assert!(line.contains(expected), "{expected} missing from {line}");
    }
    let basic = base64::engine::general_purpose::STANDARD.encode("snapwarden:s3cret-pw");
    for secret in ["s3cret-pw", basic.as_str()] {
        assert!(!logs.contains(secret), "{secret} leaked: {logs}");
    }
    assert!(
        !logs.to_ascii_lowercase().contains("authorization"),
        "{logs}"
    );
}
