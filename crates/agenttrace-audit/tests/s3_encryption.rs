//! `serve` on S3 says at start when objects would be written unencrypted
//! (a bucket without default encryption and no `AUDIT_S3_SSE`), and is
//! quiet when `AUDIT_S3_SSE` is set. Real S3 API (moto on loopback); skips
//! without it unless AUDIT_REQUIRE_SERVICES=1.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use audit_testkit::serve::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_agenttrace-audit");

#[test]
fn serve_warns_about_a_bucket_without_default_encryption_unless_sse_is_set() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(bucket) = runtime.block_on(audit_testkit::fresh_bucket("s3_encryption_warning", true)) else { return };
    let dir = tempfile::tempdir().unwrap();
    for (sse, warned) in [(None, true), (Some("AES256"), false)] {
        let port = free_port();
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("AUDIT_STORAGE_BACKEND", "s3")
            .env("AUDIT_S3_BUCKET", &bucket.bucket)
            .env("AUDIT_S3_ENDPOINT", audit_testkit::s3_endpoint())
            .env("AUDIT_S3_REGION", "us-east-1")
            .env("AUDIT_RETENTION_DAYS", "1")
            .env("AWS_ACCESS_KEY_ID", audit_testkit::S3_TEST_CREDENTIALS.0)
            .env("AWS_SECRET_ACCESS_KEY", audit_testkit::S3_TEST_CREDENTIALS.1)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(mode) = sse {
            command.env("AUDIT_S3_SSE", mode);
        }
        let mut child = command.spawn().unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "serve exited before listening");
            assert!(start.elapsed() < Duration::from_secs(30), "serve did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.contains("no default encryption"), warned, "AUDIT_S3_SSE={sse:?}:\n{stderr}");
    }
}
