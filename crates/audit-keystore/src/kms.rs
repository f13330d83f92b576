//! AWS KMS as the master key (`AUDIT_KMS_KEY_ID`): data keys are wrapped
//! by KMS `Encrypt` and unwrapped by `Decrypt`, the key id bound as
//! encryption context, so the master key never leaves KMS and every unwrap
//! is in KMS's own audit trail (CloudTrail).

use async_trait::async_trait;
use audit_core::personal::{DataKey, KeyId};
use aws_sdk_kms::primitives::Blob;

use crate::{KeyStoreError, KeyWrapper};

/// The encryption-context member that binds a wrapped key to its id.
const CONTEXT: &str = "agenttrace-key-id";

/// A KMS key wrapping data keys.
#[derive(Debug, Clone)]
pub struct KmsWrapper {
    client: aws_sdk_kms::Client,
    key_id: String,
}

/// Where KMS is (`None` members: the standard AWS configuration chain).
#[derive(Debug, Clone, Default)]
pub struct KmsConfig {
    /// The KMS key: id, ARN or alias.
    pub key_id: String,
    /// Another endpoint (tests: moto).
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// Static credentials (id, secret).
    pub credentials: Option<(String, String)>,
}

impl KmsWrapper {
    /// A wrapper over `config.key_id`; checks that the key can encrypt
    /// (a wrong id or missing permission fails here, at start, naming it).
    pub async fn connect(config: KmsConfig) -> Result<KmsWrapper, KeyStoreError> {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some((id, secret)) = &config.credentials {
            loader =
                loader.credentials_provider(aws_sdk_kms::config::Credentials::new(id, secret, None, None, "static"));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_kms::config::Builder::from(&shared);
        if shared.region().is_none() {
            builder = builder.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let wrapper = KmsWrapper { client: aws_sdk_kms::Client::from_conf(builder.build()), key_id: config.key_id };
        // Fail at start rather than at the first personal event.
        wrapper.wrap(&DataKey::from_bytes([0; 32]), KeyId::from_bytes([0; 16])).await?;
        Ok(wrapper)
    }
}

fn kms_error(what: &str, key_id: &str, e: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::MasterKey(format!("AUDIT_KMS_KEY_ID {key_id}: {what} failed: {e}"))
}

/// An SDK error as one short sentence: the service's code and message when
/// it answered, else the whole error chain.
fn brief<E, R>(e: &aws_sdk_kms::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_kms::error::ProvideErrorMetadata as _;
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_kms::error::DisplayErrorContext(e).to_string(),
    }
}

#[async_trait]
impl KeyWrapper for KmsWrapper {
    async fn wrap(&self, key: &DataKey, key_id: KeyId) -> Result<Vec<u8>, KeyStoreError> {
        let out = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.as_bytes().to_vec()))
            .encryption_context(CONTEXT, key_id.to_string())
            .send()
            .await
            .map_err(|e| kms_error("Encrypt", &self.key_id, brief(&e)))?;
        out.ciphertext_blob.map(Blob::into_inner).ok_or_else(|| kms_error("Encrypt", &self.key_id, "no ciphertext"))
    }

    async fn unwrap(&self, wrapped: &[u8], key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError> {
        let out = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(wrapped.to_vec()))
            .encryption_context(CONTEXT, key_id.to_string())
            .send()
            .await;
        match out {
            Ok(out) => {
                let plain = out.plaintext.map(Blob::into_inner).unwrap_or_default();
                Ok(<[u8; 32]>::try_from(plain).ok().map(DataKey::from_bytes))
            }
            Err(e) => {
                let service = e.as_service_error();
                // Not this key's ciphertext, or not for this key id: "not ours".
                if service.is_some_and(|s| s.is_invalid_ciphertext_exception() || s.is_incorrect_key_exception()) {
                    Ok(None)
                } else {
                    Err(kms_error("Decrypt", &self.key_id, brief(&e)))
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("the KMS key {} (AUDIT_KMS_KEY_ID)", self.key_id)
    }
}
