//! The production key store: a table in a PostgreSQL schema of its own
//! (`agenttrace_keys` by default), so that its grants, its backups and
//! their retention can differ from the query index's. Several service
//! instances may share it: a new subject's key is inserted with
//! `ON CONFLICT DO NOTHING` and read back, so racing instances agree.
//!
//! Erasure deletes the row. PostgreSQL keeps a deleted row's bytes until
//! `VACUUM` reclaims the page, and in its WAL and base backups for as long
//! as those are kept: docs say what an operator must do about them.

use std::str::FromStr;

use async_trait::async_trait;
use std::sync::Arc;

use audit_core::personal::{DataKey, KeyId, Subject};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::{BLIND_KEY_ROW, KeyStoreError, KeyWrapper, Keyring, LegalHold, SubjectKeys, new_wrapped_key};

/// The schema the store uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "agenttrace_keys";

/// Subject keys in PostgreSQL.
#[derive(Clone)]
pub struct PostgresSubjectKeys {
    pool: Pool,
    schema: String,
    keyring: Keyring,
}

impl std::fmt::Debug for PostgresSubjectKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSubjectKeys").field("schema", &self.schema).finish_non_exhaustive()
    }
}

fn db(e: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::Database(e.to_string())
}

impl PostgresSubjectKeys {
    /// Connects to `url`, creates `schema` and its tables if missing, and
    /// makes (first time) or unwraps the store's blind key with `wrapper`.
    pub async fn connect(
        url: &str,
        schema: &str,
        wrapper: Arc<dyn KeyWrapper>,
    ) -> Result<PostgresSubjectKeys, KeyStoreError> {
        let valid = schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(KeyStoreError::Database(format!(
                "key store schema {schema:?}: use lowercase letters, digits and _"
            )));
        }
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| KeyStoreError::Database(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            // Not silently unencrypted: TLS comes with the service's wiring.
            return Err(KeyStoreError::Database("sslmode=require is not supported by the key store yet".into()));
        }
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(8)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| KeyStoreError::Database(format!("cannot build the PostgreSQL pool: {e}")))?;
        let mut client = pool.get().await.map_err(db)?;
        let tx = client.transaction().await.map_err(db)?;
        // Instances starting at once: one creates, the others wait.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&format!("agenttrace-keys:{schema}")])
            .await
            .map_err(db)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
             CREATE TABLE IF NOT EXISTS {schema}.subject_keys (
                 organization_id TEXT NOT NULL,
                 subject TEXT NOT NULL,
                 key_id TEXT NOT NULL,
                 wrapped BYTEA NOT NULL,
                 PRIMARY KEY (organization_id, subject));
             CREATE UNIQUE INDEX IF NOT EXISTS subject_keys_by_id ON {schema}.subject_keys (organization_id, key_id);
             CREATE TABLE IF NOT EXISTS {schema}.store_keys (
                 name TEXT PRIMARY KEY,
                 key_id TEXT NOT NULL,
                 wrapped BYTEA NOT NULL);
             CREATE TABLE IF NOT EXISTS {schema}.legal_holds (
                 organization_id TEXT NOT NULL,
                 id TEXT NOT NULL,
                 subject TEXT,
                 reason TEXT NOT NULL,
                 placed_at TEXT NOT NULL,
                 PRIMARY KEY (organization_id, id));"
        ))
        .await
        .map_err(db)?;
        let (id, wrapped) = new_wrapped_key(wrapper.as_ref()).await?;
        tx.execute(
            &format!(
                "INSERT INTO {schema}.store_keys (name, key_id, wrapped) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
            ),
            &[&BLIND_KEY_ROW, &id.to_string(), &wrapped],
        )
        .await
        .map_err(db)?;
        let row = tx
            .query_one(&format!("SELECT key_id, wrapped FROM {schema}.store_keys WHERE name = $1"), &[&BLIND_KEY_ROW])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        let keyring = Keyring::open(wrapper, row.get(0), row.get(1)).await?;
        Ok(PostgresSubjectKeys { pool, schema: schema.to_owned(), keyring })
    }
}

#[async_trait]
impl SubjectKeys for PostgresSubjectKeys {
    async fn key_for(&self, organization_id: &str, subject: &Subject) -> Result<(KeyId, DataKey), KeyStoreError> {
        let token = self.keyring.subject_token(organization_id, subject);
        let client = self.pool.get().await.map_err(db)?;
        let s = &self.schema;
        let find = format!("SELECT key_id, wrapped FROM {s}.subject_keys WHERE organization_id = $1 AND subject = $2");
        if let Some(row) = client.query_opt(&find, &[&organization_id, &token]).await.map_err(db)? {
            return self.keyring.unwrap(row.get(0), row.get(1)).await;
        }
        let (id, wrapped) = self.keyring.new_key().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO {s}.subject_keys (organization_id, subject, key_id, wrapped) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (organization_id, subject) DO NOTHING"
                ),
                &[&organization_id, &token, &id.to_string(), &wrapped],
            )
            .await
            .map_err(db)?;
        let row = client.query_one(&find, &[&organization_id, &token]).await.map_err(db)?;
        self.keyring.unwrap(row.get(0), row.get(1)).await
    }

    async fn keys_for(
        &self,
        organization_id: &str,
        subjects: &[Subject],
    ) -> Result<Vec<(KeyId, DataKey)>, KeyStoreError> {
        let tokens: Vec<String> = subjects.iter().map(|s| self.keyring.subject_token(organization_id, s)).collect();
        let s = &self.schema;
        let find = format!("SELECT key_id, wrapped FROM {s}.subject_keys WHERE organization_id = $1 AND subject = $2");
        let mut client = self.pool.get().await.map_err(db)?;
        let mut rows: Vec<Option<(String, Vec<u8>)>> = Vec::with_capacity(tokens.len());
        for t in &tokens {
            rows.push(client.query_opt(&find, &[&organization_id, t]).await.map_err(db)?.map(|r| (r.get(0), r.get(1))));
        }
        if rows.iter().any(Option::is_none) {
            // New keys in one transaction: one commit for the whole batch.
            let tx = client.transaction().await.map_err(db)?;
            let insert = format!(
                "INSERT INTO {s}.subject_keys (organization_id, subject, key_id, wrapped) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (organization_id, subject) DO NOTHING"
            );
            for (t, row) in tokens.iter().zip(&rows) {
                if row.is_none() {
                    let (id, wrapped) = self.keyring.new_key().await?;
                    tx.execute(&insert, &[&organization_id, t, &id.to_string(), &wrapped]).await.map_err(db)?;
                }
            }
            tx.commit().await.map_err(db)?;
            for (t, row) in tokens.iter().zip(rows.iter_mut()) {
                if row.is_none() {
                    let r = client.query_one(&find, &[&organization_id, t]).await.map_err(db)?;
                    *row = Some((r.get(0), r.get(1)));
                }
            }
        }
        let mut keys = Vec::with_capacity(rows.len());
        for (id, wrapped) in rows.into_iter().flatten() {
            keys.push(self.keyring.unwrap(&id, &wrapped).await?);
        }
        Ok(keys)
    }

    async fn key_by_id(&self, organization_id: &str, key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError> {
        let client = self.pool.get().await.map_err(db)?;
        let row = client
            .query_opt(
                &format!("SELECT wrapped FROM {}.subject_keys WHERE organization_id = $1 AND key_id = $2", self.schema),
                &[&organization_id, &key_id.to_string()],
            )
            .await
            .map_err(db)?;
        match row {
            Some(r) => Ok(Some(self.keyring.unwrap(&key_id.to_string(), r.get(0)).await?.1)),
            None => Ok(None),
        }
    }

    async fn destroy(&self, organization_id: &str, subject: &Subject) -> Result<Option<KeyId>, KeyStoreError> {
        let token = self.keyring.subject_token(organization_id, subject);
        let client = self.pool.get().await.map_err(db)?;
        let row = client
            .query_opt(
                &format!(
                    "DELETE FROM {}.subject_keys WHERE organization_id = $1 AND subject = $2 RETURNING key_id",
                    self.schema
                ),
                &[&organization_id, &token],
            )
            .await
            .map_err(db)?;
        row.map(|r| crate::parse_key_id(r.get(0))).transpose()
    }

    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn place_hold(
        &self,
        organization_id: &str,
        subject: Option<&Subject>,
        reason: &str,
    ) -> Result<LegalHold, KeyStoreError> {
        let hold = self.keyring.new_hold(organization_id, subject, reason)?;
        let client = self.pool.get().await.map_err(db)?;
        client
            .execute(
                &format!(
                    "INSERT INTO {}.legal_holds (organization_id, id, subject, reason, placed_at) VALUES ($1, $2, $3, $4, $5)",
                    self.schema
                ),
                &[&organization_id, &hold.id, &hold.subject_token, &hold.reason, &hold.placed_at],
            )
            .await
            .map_err(db)?;
        Ok(hold)
    }

    async fn holds(&self, organization_id: &str) -> Result<Vec<LegalHold>, KeyStoreError> {
        let client = self.pool.get().await.map_err(db)?;
        let rows = client
            .query(
                &format!(
                    "SELECT id, subject, reason, placed_at FROM {}.legal_holds WHERE organization_id = $1 ORDER BY placed_at, id",
                    self.schema
                ),
                &[&organization_id],
            )
            .await
            .map_err(db)?;
        Ok(rows
            .iter()
            .map(|r| LegalHold { id: r.get(0), subject_token: r.get(1), reason: r.get(2), placed_at: r.get(3) })
            .collect())
    }

    async fn lift_hold(&self, organization_id: &str, id: &str) -> Result<Option<LegalHold>, KeyStoreError> {
        let client = self.pool.get().await.map_err(db)?;
        let row = client
            .query_opt(
                &format!(
                    "DELETE FROM {}.legal_holds WHERE organization_id = $1 AND id = $2 RETURNING id, subject, reason, placed_at",
                    self.schema
                ),
                &[&organization_id, &id],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| LegalHold { id: r.get(0), subject_token: r.get(1), reason: r.get(2), placed_at: r.get(3) }))
    }
}
