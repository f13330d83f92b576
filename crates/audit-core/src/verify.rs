//! Chain verification, sans-IO: feed stored lines in log order, get a report
//! (SPEC §6). The CLI, the service and the tests all use this one verifier.
//!
//! Every line is checked for: canonical, well-formed JSON; the organization
//! it belongs to; its hash; its sequence (continuity); its `previous_hash`
//! link; its timestamp (never decreasing). After a finding the verifier
//! resynchronises on the line it just read, so one deleted line yields one
//! gap and one broken link, not a cascade down the rest of the log.

use crate::hash::Hash;
use crate::json::{Object, Value};
use crate::stored::{LineFacts, StoredLineError, check_line};
use crate::timestamp::Timestamp;

/// The kinds of verification error (SPEC §6). Any of them makes a log invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// A line's hash is not the hash of its content.
    HashMismatch,
    /// A line's `previous_hash` is not the hash of the line before it.
    ChainBreak,
    /// Sequences are not consecutive (missing, repeated or reordered events).
    SequenceGap,
    /// A timestamp is earlier than the one before it.
    TimestampRegression,
    /// A line is not a well-formed, canonical stored event of this log.
    Malformed,
    /// A whole segment (or object) of the log is missing.
    MissingSegment,
    /// The Merkle root does not match a checkpoint.
    CheckpointMismatch,
    /// A checkpoint signature does not verify.
    BadSignature,
    /// The log is not consistent with a trusted checkpoint.
    InconsistentCheckpoint,
    /// The log is shorter than a checkpoint says it was.
    Truncated,
    /// An S3 object has versions or delete markers it should not have.
    UnexpectedObjectVersion,
    /// The trusted checkpoint has fewer valid witness cosignatures than required.
    WitnessQuorum,
    /// A stored tile differs from the tile the log's events make (proofs through it fail).
    TileMismatch,
}

impl FindingKind {
    /// The wire name, e.g. `hash_mismatch`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HashMismatch => "hash_mismatch",
            Self::ChainBreak => "chain_break",
            Self::SequenceGap => "sequence_gap",
            Self::TimestampRegression => "timestamp_regression",
            Self::Malformed => "malformed",
            Self::MissingSegment => "missing_segment",
            Self::CheckpointMismatch => "checkpoint_mismatch",
            Self::BadSignature => "bad_signature",
            Self::InconsistentCheckpoint => "inconsistent_checkpoint",
            Self::Truncated => "truncated",
            Self::UnexpectedObjectVersion => "unexpected_object_version",
            Self::WitnessQuorum => "witness_quorum",
            Self::TileMismatch => "tile_mismatch",
        }
    }
}

/// One verification error, located at the first event concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The event's id, when the line was readable enough to have one.
    pub event_id: Option<String>,
    /// The event's sequence: as stored, or (for an unreadable line) the
    /// sequence the line should have had.
    pub sequence: Option<u64>,
    /// What is wrong.
    pub kind: FindingKind,
    /// Evidence: expected and actual values, positions.
    pub detail: String,
}

/// Something worth knowing that does not make a log invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `torn_tail`: a partial last line from a crash mid-write, never acknowledged.
    pub kind: &'static str,
    /// Evidence.
    pub detail: String,
}

/// The verification report (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationReport {
    /// True when there are no errors.
    pub valid: bool,
    /// The log verified.
    pub organization_id: String,
    /// Events checked (in the requested range).
    pub total_events: u64,
    /// First sequence checked.
    pub first_sequence: Option<u64>,
    /// Last sequence checked.
    pub last_sequence: Option<u64>,
    /// Errors, first event first.
    pub errors: Vec<Finding>,
    /// Errors beyond the ones listed (the list is capped).
    pub errors_not_listed: u64,
    /// Warnings such as `torn_tail`.
    pub warnings: Vec<Notice>,
    /// Events a producer numbered but the log does not hold (lost between
    /// the application and the log). Empty means `complete`.
    pub producer_gaps: Vec<ProducerGap>,
    /// The last sequence retention removed, when a signed prune record
    /// covers the start of the log (the rest is verified against it).
    pub pruned_through: Option<u64>,
}

/// A range of a producer's numbering missing from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerGap {
    /// The producer.
    pub producer_id: String,
    /// First missing `producer_sequence`.
    pub missing_from: u64,
    /// Last missing `producer_sequence`.
    pub missing_to: u64,
    /// True when `audit_log.events_dropped` events in the log report the
    /// whole range lost (admitted, not silent).
    pub known_loss: bool,
}

impl VerificationReport {
    /// The report as JSON, members as SPEC §6 names them.
    pub fn to_value(&self) -> Value {
        let mut o = Object::new();
        o.insert("valid", Value::Bool(self.valid));
        o.insert("organization_id", Value::String(self.organization_id.clone()));
        o.insert("total_events", Value::Number(self.total_events as f64));
        let opt = |n: Option<u64>| n.map_or(Value::Null, |n| Value::Number(n as f64));
        o.insert("first_sequence", opt(self.first_sequence));
        o.insert("last_sequence", opt(self.last_sequence));
        let errors = self
            .errors
            .iter()
            .map(|f| {
                let mut e = Object::new();
                e.insert("event_id", f.event_id.clone().map_or(Value::Null, Value::String));
                e.insert("sequence", opt(f.sequence));
                e.insert("error", Value::String(f.kind.as_str().into()));
                e.insert("detail", Value::String(f.detail.clone()));
                Value::Object(e)
            })
            .collect();
        o.insert("errors", Value::Array(errors));
        if self.errors_not_listed > 0 {
            o.insert("errors_not_listed", Value::Number(self.errors_not_listed as f64));
        }
        let warnings = self
            .warnings
            .iter()
            .map(|w| {
                let mut e = Object::new();
                e.insert("warning", Value::String(w.kind.into()));
                e.insert("detail", Value::String(w.detail.clone()));
                Value::Object(e)
            })
            .collect();
        o.insert("warnings", Value::Array(warnings));
        o.insert("complete", Value::Bool(self.producer_gaps.is_empty()));
        let gaps = self
            .producer_gaps
            .iter()
            .map(|g| {
                let mut e = Object::new();
                e.insert("producer_id", Value::String(g.producer_id.clone()));
                e.insert("missing_from", Value::Number(g.missing_from as f64));
                e.insert("missing_to", Value::Number(g.missing_to as f64));
                e.insert("known_loss", Value::Bool(g.known_loss));
                Value::Object(e)
            })
            .collect();
        o.insert("producer_gaps", Value::Array(gaps));
        if let Some(n) = self.pruned_through {
            o.insert("pruned_through", Value::Number(n as f64));
        }
        Value::Object(o)
    }
}

/// How many findings a report lists before it only counts them.
pub const MAX_LISTED_FINDINGS: usize = 1000;

#[derive(Debug)]
struct MerkleTracking {
    until: u64,
    frontier: crate::merkle::Frontier,
    wanted: std::collections::BTreeSet<u64>,
    roots: std::collections::BTreeMap<u64, crate::Hash>,
}

impl MerkleTracking {
    fn note_root(&mut self) {
        let size = self.frontier.size();
        if self.wanted.contains(&size) {
            self.roots.insert(size, self.frontier.root());
        }
    }
}

/// Where the verifier picks up the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainStart {
    /// The beginning of the log: sequence 0 linking to 64 zeros.
    Genesis,
    /// Mid-log: the first line fed must be the event *before* the range,
    /// pushed with [`ChainVerifier::push_anchor`].
    Anchored,
}

/// Streaming verifier of one organization's log.
#[derive(Debug)]
pub struct ChainVerifier {
    organization_id: String,
    next_sequence: Option<u64>,
    previous_hash: Option<Hash>,
    previous_timestamp: Option<Timestamp>,
    /// From genesis every producer must start at 0; mid-log its first event sets the baseline.
    from_genesis: bool,
    /// Per producer: the `producer_sequence` expected next.
    producers: std::collections::HashMap<String, u64>,
    /// Per producer: ranges `audit_log.events_dropped` events report lost.
    reported_losses: std::collections::HashMap<String, Vec<(u64, u64)>>,
    /// The Merkle tree of the events read so far, up to the largest size
    /// asked for, and its roots at the sizes asked for.
    merkle: Option<MerkleTracking>,
    /// Resumed from a verified prefix: its tree, which tracking extends.
    merkle_base: Option<crate::merkle::Frontier>,
    /// The state when the tree reached the largest size asked for (the
    /// newest checkpoint), kept to resume from if the whole run is valid.
    prefix: Option<(u64, VerifiedPrefix)>,
    report: VerificationReport,
}

/// What a valid verification of a log's first `size` events leaves behind:
/// enough to check only the events appended after them next time (an
/// incremental verification), and the tree of those events, so that the
/// next checkpoint is checked for consistency with this one.
///
/// A prefix says nothing about the stored bytes it came from staying
/// unchanged: a later rewrite of those events is found by the next full
/// verification, not by the incremental ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPrefix {
    organization_id: String,
    /// The prefix was read from the first event (so every producer's
    /// numbering is known from 0), not from a prune record.
    from_start: bool,
    pruned_through: Option<u64>,
    last_hash: Hash,
    last_timestamp: Option<Timestamp>,
    tree: crate::merkle::Frontier,
    producers: std::collections::HashMap<String, u64>,
    reported_losses: std::collections::HashMap<String, Vec<(u64, u64)>>,
}

impl VerifiedPrefix {
    /// The start of a log whose events `0..tree.size()` retention removed,
    /// as a signed prune record describes them (checked by the caller):
    /// their Merkle tree (from the kept hashes), the last removed event's
    /// hash and timestamp. Producers' numbering before the cut is unknown,
    /// so each producer's first event after it sets its baseline.
    pub fn after_prune(
        organization_id: &str,
        tree: crate::merkle::Frontier,
        last_hash: Hash,
        last_timestamp: Timestamp,
    ) -> Self {
        VerifiedPrefix {
            organization_id: organization_id.to_owned(),
            from_start: false,
            pruned_through: tree.size().checked_sub(1),
            last_hash,
            last_timestamp: Some(last_timestamp),
            tree,
            producers: std::collections::HashMap::new(),
            reported_losses: std::collections::HashMap::new(),
        }
    }

    /// The log the prefix belongs to.
    pub fn organization_id(&self) -> &str {
        &self.organization_id
    }

    /// Events verified: sequences `0..size`.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The Merkle root of those events (the signed root at that size).
    pub fn root(&self) -> Hash {
        self.tree.root()
    }

    /// The hash of the last verified event.
    pub fn last_hash(&self) -> Hash {
        self.last_hash
    }

    /// The prefix as JSON, to keep between runs (see [`VerifiedPrefix::from_value`]).
    pub fn to_value(&self) -> Value {
        let mut o = Object::new();
        o.insert("organization_id", Value::String(self.organization_id.clone()));
        o.insert("from_start", Value::Bool(self.from_start));
        if let Some(n) = self.pruned_through {
            o.insert("pruned_through", Value::Number(n as f64));
        }
        o.insert("last_hash", Value::String(self.last_hash.to_hex()));
        if let Some(t) = self.last_timestamp {
            o.insert("last_timestamp", Value::String(t.to_string()));
        }
        o.insert("size", Value::Number(self.tree.size() as f64));
        o.insert("peaks", Value::Array(self.tree.peaks().iter().map(|h| Value::String(h.to_hex())).collect()));
        let mut producers = Object::new();
        for (id, next) in &self.producers {
            producers.insert(id.clone(), Value::Number(*next as f64));
        }
        o.insert("producers", Value::Object(producers));
        let mut losses = Object::new();
        for (id, ranges) in &self.reported_losses {
            let pairs = ranges
                .iter()
                .map(|(a, b)| Value::Array(vec![Value::Number(*a as f64), Value::Number(*b as f64)]))
                .collect();
            losses.insert(id.clone(), Value::Array(pairs));
        }
        o.insert("reported_losses", Value::Object(losses));
        Value::Object(o)
    }

    /// A prefix kept with [`VerifiedPrefix::to_value`]; the error names the
    /// member that is wrong. Whoever reads one must trust where it was kept
    /// (e.g. check a signature over it): it is believed, not re-verified.
    pub fn from_value(value: &Value) -> Result<VerifiedPrefix, String> {
        let Value::Object(o) = value else { return Err("not a JSON object".into()) };
        let text = |name: &str| match o.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("{name}: missing or not a string")),
        };
        let number = |v: Option<&Value>, name: &str| match v {
            Some(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 && *n < 9_007_199_254_740_992.0 => Ok(*n as u64),
            _ => Err(format!("{name}: missing or not a whole number")),
        };
        let hash = |s: &str, name: &str| Hash::from_hex(s).map_err(|_| format!("{name}: not a hex SHA-256 hash"));
        let peaks = match o.get("peaks") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => hash(s, "peaks"),
                    _ => Err("peaks: not a string".into()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err("peaks: missing or not an array".into()),
        };
        let size = number(o.get("size"), "size")?;
        let tree = crate::merkle::Frontier::from_peaks(size, peaks).ok_or("peaks: not one per set bit of size")?;
        let mut producers = std::collections::HashMap::new();
        if let Some(Value::Object(p)) = o.get("producers") {
            for (id, next) in p.iter() {
                producers.insert(id.to_owned(), number(Some(next), "producers")?);
            }
        }
        let mut reported_losses = std::collections::HashMap::new();
        if let Some(Value::Object(l)) = o.get("reported_losses") {
            for (id, ranges) in l.iter() {
                let Value::Array(ranges) = ranges else { return Err("reported_losses: not an array".into()) };
                let mut out = Vec::new();
                for r in ranges {
                    match r {
                        Value::Array(pair) if pair.len() == 2 => out
                            .push((number(pair.first(), "reported_losses")?, number(pair.get(1), "reported_losses")?)),
                        _ => return Err("reported_losses: not [from, to] pairs".into()),
                    }
                }
                reported_losses.insert(id.to_owned(), out);
            }
        }
        Ok(VerifiedPrefix {
            organization_id: text("organization_id")?,
            from_start: matches!(o.get("from_start"), Some(Value::Bool(true))),
            pruned_through: o.get("pruned_through").map(|v| number(Some(v), "pruned_through")).transpose()?,
            last_hash: hash(&text("last_hash")?, "last_hash")?,
            last_timestamp: match o.get("last_timestamp") {
                None => None,
                Some(_) => Some(
                    Timestamp::parse_rfc3339(&text("last_timestamp")?)
                        .map_err(|_| "last_timestamp: not RFC 3339".to_owned())?,
                ),
            },
            tree,
            producers,
            reported_losses,
        })
    }
}

impl ChainVerifier {
    /// A verifier for `organization_id`'s log, starting at `start`.
    pub fn new(organization_id: &str, start: ChainStart) -> Self {
        let genesis = start == ChainStart::Genesis;
        ChainVerifier {
            organization_id: organization_id.to_owned(),
            next_sequence: genesis.then_some(0),
            previous_hash: genesis.then_some(Hash::GENESIS),
            previous_timestamp: None,
            from_genesis: genesis,
            producers: std::collections::HashMap::new(),
            reported_losses: std::collections::HashMap::new(),
            merkle: None,
            merkle_base: None,
            prefix: None,
            report: VerificationReport {
                valid: true,
                organization_id: organization_id.to_owned(),
                total_events: 0,
                first_sequence: None,
                last_sequence: None,
                errors: Vec::new(),
                errors_not_listed: 0,
                warnings: Vec::new(),
                producer_gaps: Vec::new(),
                pruned_through: None,
            },
        }
    }

    /// A verifier that picks up after `prefix`: the first line fed must be
    /// the event at sequence `prefix.size()`, linked to the prefix's last
    /// event; producers' numbering and the Merkle tree continue from it.
    pub fn resume(prefix: &VerifiedPrefix) -> Self {
        let mut v = ChainVerifier::new(&prefix.organization_id, ChainStart::Genesis);
        v.from_genesis = prefix.from_start;
        v.report.pruned_through = prefix.pruned_through;
        v.next_sequence = Some(prefix.size());
        v.previous_hash = Some(prefix.last_hash);
        v.previous_timestamp = prefix.last_timestamp;
        v.producers.clone_from(&prefix.producers);
        v.reported_losses.clone_from(&prefix.reported_losses);
        v.merkle_base = Some(prefix.tree.clone());
        v
    }

    /// Also builds the Merkle tree of the log and records its root at each of
    /// `sizes` (to compare with checkpoints of those sizes). Only from
    /// genesis or a resumed prefix; sizes below a prefix's are not reached.
    pub fn track_merkle_at(&mut self, sizes: &[u64]) {
        if !(self.from_genesis || self.merkle_base.is_some()) || sizes.is_empty() {
            return;
        }
        let mut t = MerkleTracking {
            until: sizes.iter().copied().max().unwrap_or(0),
            frontier: self.merkle_base.clone().unwrap_or_default(),
            wanted: sizes.iter().copied().collect(),
            roots: std::collections::BTreeMap::new(),
        };
        t.note_root();
        self.merkle = Some(t);
    }

    /// The tree head of the first `size` events, if tracked and reached.
    pub fn merkle_root_at(&self, size: u64) -> Option<crate::Hash> {
        self.merkle.as_ref().and_then(|t| t.roots.get(&size).copied())
    }

    /// Lines read so far (readable or not).
    pub fn lines_read(&self) -> u64 {
        self.report.total_events
    }

    /// Events the Merkle tracking has taken in.
    pub fn merkle_size(&self) -> Option<u64> {
        self.merkle.as_ref().map(|t| t.frontier.size())
    }

    /// Tracks a producer's numbering; a jump is a gap (SPEC §6, completeness).
    fn note_producer(&mut self, producer_id: &str, n: u64) {
        let expected = match self.producers.get(producer_id) {
            Some(&e) => Some(e),
            None if self.from_genesis => Some(0),
            None => None,
        };
        if let Some(e) = expected
            && n > e
        {
            self.report.producer_gaps.push(ProducerGap {
                producer_id: producer_id.to_owned(),
                missing_from: e,
                missing_to: n - 1,
                known_loss: false,
            });
        }
        let next = self.producers.entry(producer_id.to_owned()).or_insert(0);
        *next = (*next).max(n + 1);
    }

    fn find(&mut self, kind: FindingKind, sequence: Option<u64>, event_id: Option<&str>, detail: String) {
        self.report.valid = false;
        if self.report.errors.len() < MAX_LISTED_FINDINGS {
            self.report.errors.push(Finding { event_id: event_id.map(str::to_owned), sequence, kind, detail });
        } else {
            self.report.errors_not_listed += 1;
        }
    }

    /// A new segment (file or object) begins; its name says its first sequence.
    pub fn begin_segment(&mut self, first_sequence: u64, name: &str) {
        let Some(expected) = self.next_sequence else {
            return;
        };
        if first_sequence > expected {
            self.find(
                FindingKind::MissingSegment,
                Some(expected),
                None,
                format!("events {expected}..{} are in no segment; the next segment is {name}", first_sequence - 1),
            );
            self.next_sequence = Some(first_sequence);
            self.previous_hash = None;
        } else if first_sequence < expected {
            self.find(
                FindingKind::Malformed,
                Some(first_sequence),
                None,
                format!("segment {name} starts at {first_sequence} but the log already reached {}", expected - 1),
            );
        }
    }

    /// Checks the event just before a time range and anchors the chain on it
    /// (it is not counted in the report's totals).
    pub fn push_anchor(&mut self, line: &[u8]) {
        match check_line(line) {
            Ok(e) => {
                if e.computed_hash != e.hash {
                    let detail = "the event before the range does not match its hash".to_owned();
                    self.find(FindingKind::HashMismatch, Some(e.sequence), Some(e.event_id), detail);
                }
                self.next_sequence = Some(e.sequence + 1);
                self.previous_hash = Some(e.hash);
                self.previous_timestamp = Some(e.timestamp);
            }
            Err(why) => {
                let detail = format!("the event before the range is not a well-formed stored event: {why}");
                self.find(FindingKind::Malformed, None, None, detail);
            }
        }
    }

    /// Checks one stored line (without its newline). Returns true when the
    /// line was readable (whatever the chain checks found).
    pub fn push_line(&mut self, line: &[u8]) -> bool {
        self.push_checked(check_line(line))
    }

    /// Like [`ChainVerifier::push_line`], for a line already checked with
    /// [`check_line`] (so that callers can check many lines in parallel and
    /// feed the results in log order).
    pub fn push_checked(&mut self, checked: Result<LineFacts<'_>, StoredLineError>) -> bool {
        self.report.total_events += 1;
        let event: LineFacts<'_> = match checked {
            Ok(f) => f,
            Err(why) => {
                let seq = self.next_sequence;
                self.find(FindingKind::Malformed, seq, None, why.to_string());
                if self.report.first_sequence.is_none() {
                    self.report.first_sequence = seq;
                }
                self.report.last_sequence = seq.or(self.report.last_sequence);
                // Assume the unreadable line held the expected event; its hash is unknown.
                self.next_sequence = seq.map(|s| s + 1);
                self.previous_hash = None;
                return false;
            }
        };
        let seq = event.sequence;
        let id = event.event_id;
        if event.organization_id != self.organization_id {
            let detail = format!(
                "event belongs to organization {:?}, found in the log of {:?}",
                event.organization_id, self.organization_id
            );
            self.find(FindingKind::Malformed, Some(seq), Some(id), detail);
        }
        if event.computed_hash != event.hash {
            let detail = format!("stored hash {}, content hashes to {}", event.hash, event.computed_hash);
            self.find(FindingKind::HashMismatch, Some(seq), Some(id), detail);
        }
        if let Some(expected) = self.next_sequence
            && seq != expected
        {
            let detail = if seq > expected {
                format!("expected sequence {expected}, found {seq}: events {expected}..{} are missing", seq - 1)
            } else {
                format!("expected sequence {expected}, found {seq}: repeated or out of order")
            };
            self.find(FindingKind::SequenceGap, Some(seq), Some(id), detail);
        }
        if let Some(prev) = self.previous_hash
            && event.previous_hash != prev
        {
            let detail =
                format!("previous_hash {} does not match the preceding event's hash {prev}", event.previous_hash);
            self.find(FindingKind::ChainBreak, Some(seq), Some(id), detail);
        }
        if let Some(prev) = self.previous_timestamp
            && event.timestamp < prev
        {
            let detail = format!("timestamp {} is earlier than the preceding {prev}", event.timestamp);
            self.find(FindingKind::TimestampRegression, Some(seq), Some(id), detail);
        }
        if let Some((producer, n)) = &event.producer {
            self.note_producer(producer, *n);
        }
        for (producer, from, to) in &event.reported_losses {
            self.reported_losses.entry(producer.clone()).or_default().push((*from, *to));
        }
        if let Some(t) = self.merkle.as_mut()
            && t.frontier.size() < t.until
            && seq == t.frontier.size()
        {
            t.frontier.push(crate::merkle::leaf_hash(event.hash.as_bytes()));
            t.note_root();
        }
        if self.report.first_sequence.is_none() {
            self.report.first_sequence = Some(seq);
        }
        self.report.last_sequence = Some(seq);
        self.next_sequence = Some(seq + 1);
        self.previous_hash = Some(event.hash);
        self.previous_timestamp = Some(event.timestamp);
        self.keep_prefix_at_the_newest_checkpoint();
        true
    }

    /// When the tree has just reached the largest size asked for, keeps
    /// the state there: a prefix to resume from, if the run ends valid.
    fn keep_prefix_at_the_newest_checkpoint(&mut self) {
        let Some(t) = self.merkle.as_ref() else { return };
        if t.frontier.size() != t.until || self.prefix.is_some() || !self.report.valid {
            return;
        }
        let Some(last_hash) = self.previous_hash else { return };
        let lines_read = self.report.total_events;
        self.prefix = Some((
            lines_read,
            VerifiedPrefix {
                organization_id: self.organization_id.clone(),
                from_start: self.from_genesis,
                pruned_through: self.report.pruned_through,
                last_hash,
                last_timestamp: self.previous_timestamp,
                tree: t.frontier.clone(),
                producers: self.producers.clone(),
                reported_losses: self.reported_losses.clone(),
            },
        ));
    }

    /// Lines read when the prefix was kept (the prefix ends with the
    /// `n`-th line fed), so that a reader can tell where in its bytes.
    pub fn prefix_kept_after_line(&self) -> Option<u64> {
        self.prefix.as_ref().map(|(lines, _)| *lines)
    }

    /// Records a torn, unacknowledged last line (a crash mid-write).
    pub fn torn_tail(&mut self, segment: &str, bytes: usize) {
        self.report.warnings.push(Notice {
            kind: "torn_tail",
            detail: format!("{bytes} bytes without a final newline at the end of {segment}; never acknowledged, the next writer removes them"),
        });
    }

    /// Adds a warning (something worth knowing that does not invalidate the log).
    pub fn push_warning(&mut self, kind: &'static str, detail: String) {
        self.report.warnings.push(Notice { kind, detail });
    }

    /// Adds an error found outside the chain (e.g. by the storage reader).
    pub fn push_finding(&mut self, kind: FindingKind, sequence: Option<u64>, detail: String) {
        self.find(kind, sequence, None, detail);
    }

    /// The sequence the next line should carry, if known.
    pub fn next_sequence(&self) -> Option<u64> {
        self.next_sequence
    }

    /// Finishes and returns the report: each producer gap that reported
    /// losses cover whole (wherever in the log the report stands — it is
    /// written after the loss) is marked a known loss.
    pub fn finish(self) -> VerificationReport {
        self.finish_with_prefix().0
    }

    /// Like [`ChainVerifier::finish`], and when the whole run is valid, the
    /// verified prefix up to the newest checkpoint asked for (see
    /// [`ChainVerifier::track_merkle_at`]) to resume from next time.
    pub fn finish_with_prefix(mut self) -> (VerificationReport, Option<VerifiedPrefix>) {
        for gap in &mut self.report.producer_gaps {
            let Some(ranges) = self.reported_losses.get_mut(&gap.producer_id) else { continue };
            ranges.sort_unstable();
            // Walk the sorted ranges from the gap's start; covered when they reach its end without a hole.
            let mut next = gap.missing_from;
            for &(from, to) in ranges.iter() {
                if from <= next && to >= next {
                    next = to.saturating_add(1);
                }
                if next > gap.missing_to {
                    break;
                }
            }
            gap.known_loss = next > gap.missing_to;
        }
        let prefix = if self.report.valid { self.prefix.map(|(_, p)| p) } else { None };
        (self.report, prefix)
    }
}

#[cfg(test)]
mod tests;
