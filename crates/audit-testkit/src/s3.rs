//! An S3 API with Object Lock for tests (moto_server on loopback).

use crate::missing_service;

/// The S3 API the tests use: `AUDIT_TEST_S3_ENDPOINT` (`.ci/run` starts
/// moto_server on loopback and sets it), else `http://127.0.0.1:9199`.
pub fn s3_endpoint() -> String {
    std::env::var("AUDIT_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9199".to_owned())
}

/// The static credentials tests hand the test S3 API (moto takes any).
pub const S3_TEST_CREDENTIALS: (&str, &str) = ("testing", "testing");

/// A new, empty bucket on the test S3 API.
#[derive(Debug, Clone)]
pub struct TestBucket {
    /// The endpoint it is on.
    pub endpoint: String,
    /// Its name.
    pub bucket: String,
    /// A client for inspecting it behind the store's back.
    pub client: aws_sdk_s3::Client,
}

impl TestBucket {
    /// Store settings for this bucket (short retention and append deadline
    /// unless the test changes them).
    pub fn config(&self) -> audit_storage_s3::S3Config {
        self.config_via(&self.endpoint)
    }

    /// Store settings for this bucket reached through another endpoint
    /// (a [`FlakyProxy`] in front of the real one).
    pub fn config_via(&self, endpoint: &str) -> audit_storage_s3::S3Config {
        let mut c = audit_storage_s3::S3Config::new(&self.bucket);
        c.endpoint = Some(endpoint.to_owned());
        c.region = Some("us-east-1".to_owned());
        c.credentials = Some((S3_TEST_CREDENTIALS.0.to_owned(), S3_TEST_CREDENTIALS.1.to_owned()));
        c.retention_days = 1;
        c.append_deadline = std::time::Duration::from_secs(3);
        c
    }
}

/// A raw client for `endpoint` with the test credentials.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .http_client(http)
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            S3_TEST_CREDENTIALS.0,
            S3_TEST_CREDENTIALS.1,
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Creates a fresh bucket (with Object Lock when asked) on the test S3
/// API, or returns `None` (after [`missing_service`]) when there is none.
pub async fn fresh_bucket(test: &str, object_lock: bool) -> Option<TestBucket> {
    let endpoint = s3_endpoint();
    let client = s3_client(&endpoint);
    let bucket = format!("audit-{}", uuid::Uuid::now_v7().simple());
    let created = client.create_bucket().bucket(&bucket).object_lock_enabled_for_bucket(object_lock).send().await;
    if let Err(e) = created {
        missing_service(
            test,
            &format!(
                "no S3 API at {endpoint} ({}); run moto_server -H 127.0.0.1 -p PORT and set AUDIT_TEST_S3_ENDPOINT",
                aws_sdk_s3::error::DisplayErrorContext(&e)
            ),
        );
        return None;
    }
    Some(TestBucket { endpoint, bucket, client })
}
