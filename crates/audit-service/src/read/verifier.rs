//! The one way to verify a stored log: a builder that cannot run without
//! a key unless told, in so many words, not to check signatures.

use audit_core::note::VerifierKey;
use audit_core::verify::VerificationReport;
use audit_storage::{LogStore, StorageError};

use crate::read::stored::{CheckpointSources, ProgressFn, TimeRange, VerifiedThrough, verify_log_checked};

/// How checkpoint signatures are checked.
#[derive(Debug, Clone, Copy)]
enum Signatures<'a> {
    /// Not said yet: verification refuses to run.
    Unset,
    /// Under this key (`bad_signature` when they do not open with it).
    Key(&'a VerifierKey),
    /// Not checked: each checkpoint's signature is reported unchecked, as a
    /// warning. Only where no key can exist (tests, a log without checkpoints).
    DangerUnchecked,
}

/// Why a verification could not run (a log that fails verification is a
/// report with `valid: false`, not an error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Neither a key nor `danger_unsigned_checkpoints()` was given.
    #[error(
        "verification needs the checkpoint verifier key (or an explicit danger_unsigned_checkpoints()): without it a forged checkpoint would pass"
    )]
    NoKey,
    /// Storage could not be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The one way to verify a stored log (SPEC §6): the CLI, the server and the
/// tests all go through it.
///
/// ```no_run
/// # async fn demo(store: &dyn audit_storage::LogStore, key: &audit_core::note::VerifierKey) -> Result<(), audit_service::VerifyError> {
/// use audit_service::{TimeRange, Verifier};
/// let report = Verifier::new(store).key(key).range(TimeRange::default()).verify("org-123").await?;
/// assert!(report.valid);
/// # Ok(()) }
/// ```
///
/// A whole log is held to every checkpoint given: its newest stored one,
/// the mirror's and a trusted one. A signed checkpoint whose root the log's
/// tree does not have at its size is `checkpoint_mismatch` (the log's own)
/// or `inconsistent_checkpoint` (the mirror's, or a trusted one: the log was
/// rewritten or rolled back); a log shorter than a checkpoint is
/// `truncated`. A time range is checked event by event, linked to the event
/// before it and anchored in the newest signed checkpoint.
#[derive(Debug, Clone, Copy)]
#[must_use = "a Verifier does nothing until verify() runs"]
pub struct Verifier<'a> {
    store: &'a dyn LogStore,
    signatures: Signatures<'a>,
    mirror: Option<&'a dyn LogStore>,
    trusted: Option<&'a str>,
    range: TimeRange,
    progress: Option<ProgressFn<'a>>,
    after: Option<&'a VerifiedThrough>,
}

impl<'a> Verifier<'a> {
    /// A verifier of logs in `store`. It needs [`Verifier::key`] (or
    /// [`Verifier::danger_unsigned_checkpoints`]) before it runs.
    pub fn new(store: &'a dyn LogStore) -> Self {
        Verifier {
            store,
            signatures: Signatures::Unset,
            mirror: None,
            trusted: None,
            range: TimeRange::default(),
            progress: None,
            after: None,
        }
    }

    /// Checks checkpoint signatures under this key (the organization's
    /// verifier key, `<origin>/<organization_id>`).
    pub fn key(mut self, key: &'a VerifierKey) -> Self {
        self.signatures = Signatures::Key(key);
        self
    }

    /// Skips the signature check of checkpoints (each is reported as a
    /// `checkpoint_unchecked` warning): whoever can write the store could
    /// then forge a checkpoint. For tests and logs with no key.
    pub fn danger_unsigned_checkpoints(mut self) -> Self {
        self.signatures = Signatures::DangerUnchecked;
        self
    }

    /// Also holds the log to the checkpoint mirror's newest checkpoint.
    pub fn mirror(mut self, mirror: &'a dyn LogStore) -> Self {
        self.mirror = Some(mirror);
        self
    }

    /// Also holds the log to a signed checkpoint the verifier saved earlier.
    pub fn trusted(mut self, note: &'a str) -> Self {
        self.trusted = Some(note);
        self
    }

    /// Tells `report` the events checked so far, after each chunk of a
    /// whole-log verification (for a progress bar).
    pub fn progress(mut self, report: &'a (dyn Fn(u64) + Send + Sync)) -> Self {
        self.progress = Some(ProgressFn(report));
        self
    }

    /// Verifies only this time range (default: the whole log).
    pub fn range(mut self, range: TimeRange) -> Self {
        self.range = range;
        self
    }

    /// Checks only the events after `through` (what an earlier valid run of
    /// [`Verifier::verify_and_keep`] returned for the same log): they must
    /// follow it, link to it, and extend its Merkle tree to the newest
    /// checkpoints, so the cost grows with the new events, not with the
    /// log. A rollback below it is `inconsistent_checkpoint` or
    /// `truncated`. Events inside the prefix are not read again: a rewrite
    /// there is found by the next full run. Whole-log verification only
    /// (a time range ignores it, and so does another organization's log).
    pub fn after(mut self, through: &'a VerifiedThrough) -> Self {
        self.after = Some(through);
        self
    }

    /// Verifies `organization_id`'s log.
    pub async fn verify(&self, organization_id: &str) -> Result<VerificationReport, VerifyError> {
        Ok(self.verify_and_keep(organization_id).await?.0)
    }

    /// Verifies `organization_id`'s log and, when the whole log is valid,
    /// says how far it is verified, to resume from with [`Verifier::after`].
    pub async fn verify_and_keep(
        &self,
        organization_id: &str,
    ) -> Result<(VerificationReport, Option<VerifiedThrough>), VerifyError> {
        let key = match self.signatures {
            Signatures::Unset => return Err(VerifyError::NoKey),
            Signatures::Key(k) => Some(k),
            Signatures::DangerUnchecked => None,
        };
        let sources = CheckpointSources { key, mirror: self.mirror, trusted: self.trusted, progress: self.progress };
        let after = self.after.filter(|t| t.organization_id() == organization_id);
        Ok(verify_log_checked(self.store, organization_id, self.range, &sources, after).await?)
    }
}
