//! The embedded key store: one SQLite file, `subject-keys.sqlite3`, in a
//! directory of its own — not under the log's data directory, so that
//! copies and backups of the log do not carry the keys that erasure must
//! destroy.
//!
//! Durability: `synchronous = FULL` with a rollback journal — a key is on
//! disk before the event sealed under it is acknowledged (a lost key is
//! lost data). Erasure: `secure_delete` overwrites the deleted row's bytes
//! and the file is vacuumed, so the key is gone from the file, not merely
//! unlinked from its table.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use audit_core::personal::{DataKey, KeyId, Subject};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{BLIND_KEY_ROW, KeyStoreError, KeyWrapper, Keyring, LegalHold, SubjectKeys, new_wrapped_key};

/// The file name inside the key store's directory.
pub const FILE_NAME: &str = "subject-keys.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subject_keys (
    organization_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (organization_id, subject)
);
CREATE UNIQUE INDEX IF NOT EXISTS subject_keys_by_id ON subject_keys (organization_id, key_id);
CREATE TABLE IF NOT EXISTS store_keys (
    name TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    wrapped BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS legal_holds (
    organization_id TEXT NOT NULL,
    id TEXT NOT NULL,
    subject TEXT,
    reason TEXT NOT NULL,
    placed_at TEXT NOT NULL,
    PRIMARY KEY (organization_id, id)
);";

/// Subject keys in SQLite.
#[derive(Debug, Clone)]
pub struct SqliteSubjectKeys {
    conn: Arc<Mutex<Connection>>,
    keyring: Keyring,
    path: PathBuf,
}

fn db(e: rusqlite::Error) -> KeyStoreError {
    KeyStoreError::Database(e.to_string())
}

/// A row's key id and wrapped key.
type Row = (String, Vec<u8>);

const FIND: &str = "SELECT key_id, wrapped FROM subject_keys WHERE organization_id = ?1 AND subject = ?2";

impl SqliteSubjectKeys {
    /// Opens (creating) the store in `dir` (made 0700 if missing), its
    /// keys wrapped by `wrapper`. The first open makes the store's blind
    /// key; a later open with another master key fails with
    /// [`KeyStoreError::WrongMasterKey`].
    pub async fn open(dir: &Path, wrapper: Arc<dyn KeyWrapper>) -> Result<SqliteSubjectKeys, KeyStoreError> {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| KeyStoreError::Database(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let conn = Connection::open(&path).map_err(db)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| KeyStoreError::Database(format!("cannot restrict {}: {e}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; PRAGMA busy_timeout = 10000;",
        )
        .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let find_blind = |conn: &Connection| {
            conn.query_row("SELECT key_id, wrapped FROM store_keys WHERE name = ?1", [BLIND_KEY_ROW], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .optional()
            .map_err(db)
        };
        if find_blind(&conn)?.is_none() {
            let (id, wrapped) = new_wrapped_key(wrapper.as_ref()).await?;
            conn.execute(
                "INSERT OR IGNORE INTO store_keys (name, key_id, wrapped) VALUES (?1, ?2, ?3)",
                params![BLIND_KEY_ROW, id.to_string(), wrapped],
            )
            .map_err(db)?;
        }
        let (id, wrapped) =
            find_blind(&conn)?.ok_or_else(|| KeyStoreError::Database("the blind key row vanished".into()))?;
        let keyring = Keyring::open(wrapper, &id, &wrapped).await?;
        Ok(SqliteSubjectKeys { conn: Arc::new(Mutex::new(conn)), keyring, path })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, KeyStoreError> + Send + 'static,
    ) -> Result<T, KeyStoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || work(&conn.lock().unwrap_or_else(|p| p.into_inner())))
            .await
            .map_err(|e| KeyStoreError::Database(format!("key store task failed: {e}")))?
    }

    async fn find(&self, org: &str, token: &str) -> Result<Option<Row>, KeyStoreError> {
        let (org, token) = (org.to_owned(), token.to_owned());
        self.with_conn(move |conn| {
            conn.query_row(FIND, params![org, token], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(db)
        })
        .await
    }
}

#[async_trait]
impl SubjectKeys for SqliteSubjectKeys {
    async fn key_for(&self, organization_id: &str, subject: &Subject) -> Result<(KeyId, DataKey), KeyStoreError> {
        let token = self.keyring.subject_token(organization_id, subject);
        if let Some((id, wrapped)) = self.find(organization_id, &token).await? {
            return self.keyring.unwrap(&id, &wrapped).await;
        }
        let (id, wrapped) = self.keyring.new_key().await?;
        let (org, t) = (organization_id.to_owned(), token.clone());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO subject_keys (organization_id, subject, key_id, wrapped) VALUES (?1, ?2, ?3, ?4)",
                params![org, t, id.to_string(), wrapped],
            )
            .map(drop)
            .map_err(db)
        })
        .await?;
        // Whoever inserted first, this is the subject's key now.
        let (id, wrapped) = self
            .find(organization_id, &token)
            .await?
            .ok_or_else(|| KeyStoreError::Database("a new key row vanished".into()))?;
        self.keyring.unwrap(&id, &wrapped).await
    }

    async fn keys_for(
        &self,
        organization_id: &str,
        subjects: &[Subject],
    ) -> Result<Vec<(KeyId, DataKey)>, KeyStoreError> {
        let tokens: Vec<String> = subjects.iter().map(|s| self.keyring.subject_token(organization_id, s)).collect();
        let org = organization_id.to_owned();
        let wanted = tokens.clone();
        let found: Vec<Option<Row>> = self
            .with_conn(move |conn| {
                let mut stmt = conn.prepare_cached(FIND).map_err(db)?;
                wanted
                    .iter()
                    .map(|t| stmt.query_row(params![org, t], |r| Ok((r.get(0)?, r.get(1)?))).optional().map_err(db))
                    .collect()
            })
            .await?;
        // New keys, wrapped (a KMS wrapper is called per key), then stored
        // in one transaction: one synchronous commit for all of them.
        let mut new_rows = Vec::new();
        for (token, row) in tokens.iter().zip(&found) {
            if row.is_none() && !new_rows.iter().any(|(t, _, _): &(String, KeyId, Vec<u8>)| t == token) {
                let (id, wrapped) = self.keyring.new_key().await?;
                new_rows.push((token.clone(), id, wrapped));
            }
        }
        let rows: Vec<Row> = if new_rows.is_empty() {
            found.into_iter().flatten().collect()
        } else {
            let org = organization_id.to_owned();
            let wanted = tokens.clone();
            self.with_conn(move |conn| {
                let tx = conn.unchecked_transaction().map_err(db)?;
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO subject_keys (organization_id, subject, key_id, wrapped) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .map_err(db)?;
                    for (token, id, wrapped) in &new_rows {
                        insert.execute(params![org, token, id.to_string(), wrapped]).map_err(db)?;
                    }
                }
                tx.commit().map_err(db)?;
                // Whoever inserted first, these are the subjects' keys now.
                let mut stmt = conn.prepare_cached(FIND).map_err(db)?;
                wanted
                    .iter()
                    .map(|t| {
                        stmt.query_row(params![org, t], |r| Ok((r.get(0)?, r.get(1)?)))
                            .map_err(|e| KeyStoreError::Database(format!("a new key row vanished: {e}")))
                    })
                    .collect::<Result<Vec<Row>, _>>()
            })
            .await?
        };
        let mut keys = Vec::with_capacity(rows.len());
        for (id, wrapped) in rows {
            keys.push(self.keyring.unwrap(&id, &wrapped).await?);
        }
        Ok(keys)
    }

    async fn key_by_id(&self, organization_id: &str, key_id: KeyId) -> Result<Option<DataKey>, KeyStoreError> {
        let org = organization_id.to_owned();
        let wrapped: Option<Vec<u8>> = self
            .with_conn(move |conn| {
                conn.query_row(
                    "SELECT wrapped FROM subject_keys WHERE organization_id = ?1 AND key_id = ?2",
                    params![org, key_id.to_string()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)
            })
            .await?;
        match wrapped {
            Some(w) => Ok(Some(self.keyring.unwrap(&key_id.to_string(), &w).await?.1)),
            None => Ok(None),
        }
    }

    async fn destroy(&self, organization_id: &str, subject: &Subject) -> Result<Option<KeyId>, KeyStoreError> {
        let org = organization_id.to_owned();
        let token = self.keyring.subject_token(organization_id, subject);
        let id: Option<String> = self
            .with_conn(move |conn| {
                // One statement: the id of the row it deletes, if any.
                let id: Option<String> = conn
                    .query_row(
                        "DELETE FROM subject_keys WHERE organization_id = ?1 AND subject = ?2 RETURNING key_id",
                        params![org, token],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db)?;
                if id.is_some() {
                    // Rewrite the file without the freed pages (secure_delete
                    // already zeroed the row's bytes in place).
                    conn.execute_batch("VACUUM").map_err(db)?;
                }
                Ok(id)
            })
            .await?;
        id.as_deref().map(crate::parse_key_id).transpose()
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
        let (org, h) = (organization_id.to_owned(), hold.clone());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO legal_holds (organization_id, id, subject, reason, placed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org, h.id, h.subject_token, h.reason, h.placed_at],
            )
            .map(drop)
            .map_err(db)
        })
        .await?;
        Ok(hold)
    }

    async fn holds(&self, organization_id: &str) -> Result<Vec<LegalHold>, KeyStoreError> {
        let org = organization_id.to_owned();
        self.with_conn(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, subject, reason, placed_at FROM legal_holds WHERE organization_id = ?1 ORDER BY placed_at, id",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([org], |r| {
                    Ok(LegalHold { id: r.get(0)?, subject_token: r.get(1)?, reason: r.get(2)?, placed_at: r.get(3)? })
                })
                .map_err(db)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db)
        })
        .await
    }

    async fn lift_hold(&self, organization_id: &str, id: &str) -> Result<Option<LegalHold>, KeyStoreError> {
        let (org, id) = (organization_id.to_owned(), id.to_owned());
        self.with_conn(move |conn| {
            conn.query_row(
                "DELETE FROM legal_holds WHERE organization_id = ?1 AND id = ?2 RETURNING id, subject, reason, placed_at",
                params![org, id],
                |r| Ok(LegalHold { id: r.get(0)?, subject_token: r.get(1)?, reason: r.get(2)?, placed_at: r.get(3)? }),
            )
            .optional()
            .map_err(db)
        })
        .await
    }
}
