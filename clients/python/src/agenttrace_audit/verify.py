"""An independent offline verifier of AgentTrace Audit exports, in pure
Python: an auditor checks our files without our Rust code.

What it checks (docs/FORMAT.md in the repository):

- every line is an event in RFC 8785 canonical form (the ``rfc8785``
  package) whose ``hash`` is the SHA-256 of its canonical form without
  ``hash``;
- a ``jsonl`` export: sequences ascending, and each event's
  ``previous_hash`` is the hash of the event before it wherever the two
  follow each other; from sequence 0, the chain starts at 64 zeros, and
  with ``checkpoint`` (a signed note) the Merkle root (RFC 9162, leaf input
  = the 32 hash bytes) of the first ``size`` events must be the signed one;
  (a checkpoint that does not open with the key cannot be used: exit 2);
- an evidence bundle (``export --with-proof``): the checkpoint's C2SP
  signed-note signature (Ed25519, ``cryptography``) under the given
  verifier key, and each event's RFC 9162 inclusion proof in its tree.

``agenttrace-verify FILE [--key KEY] [--checkpoint NOTE] [--json]`` exits 0
valid, 1 invalid, 2 cannot run — like ``agenttrace-audit verify-export``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64


class VerifyError(Exception):
    """The input cannot be checked at all (not a finding about the log)."""


# -- C2SP signed notes -------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    """A C2SP verifier key ``name+keyid+base64(0x01 || Ed25519 public key)``."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # base64 may hold "+" too
        if len(parts) != 3:
            raise VerifyError("a verifier key is name+keyid+base64key")
        name, key_id_hex, b64 = parts
        try:
            blob = base64.b64decode(b64, validate=True)
            key_id = bytes.fromhex(key_id_hex)
        except ValueError as e:
            raise VerifyError(f"the verifier key is malformed: {e}") from e
        if len(blob) != 33 or blob[0] != 0x01 or len(key_id) != 4:
            raise VerifyError("the verifier key is not an Ed25519 key (type 0x01, 32 bytes)")
        expected = hashlib.sha256(name.encode() + b"\n" + blob).digest()[:4]
        if expected != key_id:
            raise VerifyError("the verifier key's id does not match its name and key")
        return cls(name, key_id, Ed25519PublicKey.from_public_bytes(blob[1:]))


def open_note(note: str, key: VerifierKey) -> str:
    """The text of a signed note, if ``key`` signed it (raises otherwise)."""
    if not note.endswith("\n"):
        raise ValueError("a note ends with a newline")
    split = note.rstrip("\n").rfind("\n\n")
    if split < 0:
        raise ValueError("no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :].rstrip("\n")
    for line in signatures.split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError("a signature line starts with an em dash")
        name, _, b64 = line[2:].partition(" ")
        blob = base64.b64decode(b64)
        if name != key.name or blob[:4] != key.key_id:
            continue
        try:
            key.public_key.verify(blob[4:], text.encode())
        except InvalidSignature:
            raise ValueError(f"the signature by {name} does not verify") from None
        return text
    raise ValueError(f"not signed by {key.name}")


def unsigned_text(note: str) -> str:
    split = note.rstrip("\n").rfind("\n\n")
    if split < 0:
        raise ValueError("not a signed note")
    return note[: split + 1]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or not lines[1].isdigit():
            raise ValueError("a checkpoint is origin, size and base64 root")
        root = base64.b64decode(lines[2], validate=True)
        if len(root) != 32:
            raise ValueError("the root is not 32 bytes")
        return cls(lines[0], int(lines[1]), root)


# -- RFC 9162 Merkle trees ---------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """The root of a tree over leaf hashes (RFC 9162 §2.1.1)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    # Bottom-up with the RFC's left-heavy split: carry an odd node up.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(size1: int, size2: int, proof: list[bytes], root1: bytes, root2: bytes) -> bool:
    """RFC 9162 §2.1.4.2."""
    if size1 > size2:
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if size1 == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # a power of two: the first tree is a node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == root1 and sr == root2


# -- stored events -----------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate member {k!r}")
        out[k] = v
    return out


def check_line(line: bytes) -> dict[str, Any]:
    """A stored line's event, if it is canonical and its hash is right;
    raises ``ValueError`` saying what is wrong."""
    event = json.loads(line, object_pairs_hook=_no_duplicates)
    if not isinstance(event, dict):
        raise ValueError("not a JSON object")
    if rfc8785.dumps(event) != line:
        raise ValueError("not in RFC 8785 canonical form")
    claimed = event.get("hash")
    if not isinstance(claimed, str):
        raise ValueError("no hash member")
    body = {k: v for k, v in event.items() if k != "hash"}
    computed = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    if computed != claimed:
        raise ValueError(f"hash_mismatch: stored {claimed}, content hashes to {computed}")
    return event


class Report:
    """The report of SPEC §6 (the members the offline check can fill)."""

    def __init__(self, organization_id: str | None = None) -> None:
        self.organization_id = organization_id
        self.total_events = 0
        self.first_sequence: int | None = None
        self.last_sequence: int | None = None
        self.errors: list[dict[str, Any]] = []
        self.warnings: list[dict[str, str]] = []

    def error(self, kind: str, detail: str, event: dict[str, Any] | None = None, sequence: int | None = None) -> None:
        self.errors.append(
            {
                "event_id": (event or {}).get("event_id"),
                "sequence": (event or {}).get("sequence", sequence),
                "error": kind,
                "detail": detail,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": not self.errors,
            "organization_id": self.organization_id,
            "total_events": self.total_events,
            "first_sequence": self.first_sequence,
            "last_sequence": self.last_sequence,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def verify_export(path: str | Path, key: VerifierKey | None = None, checkpoint: str | None = None) -> dict[str, Any]:
    """Checks a ``jsonl`` export or an evidence bundle (see the module doc)
    and returns the report as a dict (``valid``, ``errors``, …)."""
    lines = Path(path).read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    else:
        raise VerifyError("the file does not end with a newline (cut short?)")
    if lines and lines[0].startswith(b'{"checkpoint":'):
        return _verify_bundle(lines, key)
    return _verify_jsonl(lines, key, checkpoint)


def _signed_checkpoint(note: str, key: VerifierKey | None, report: Report) -> Checkpoint | None:
    try:
        if key is None:
            report.warnings.append({"warning": "checkpoint_unchecked", "detail": "no verifier key: the signature was not checked"})
            return Checkpoint.parse(unsigned_text(note))
        return Checkpoint.parse(open_note(note, key))
    except (ValueError, VerifyError) as e:
        report.error("bad_signature", f"checkpoint: {e}")
        return None


def _events(lines: list[bytes], report: Report, bundle: bool) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each readable event (with its proof line in a bundle); unreadable
    lines are findings."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    step = 2 if bundle else 1
    for n in range(0, len(lines), step):
        line = lines[n]
        report.total_events += 1
        try:
            event = check_line(line)
        except ValueError as e:
            kind = "hash_mismatch" if str(e).startswith("hash_mismatch") else "malformed"
            report.error(kind, f"line {n + 1 + bundle}: {e}")
            continue
        proof = None
        if bundle:
            try:
                proof = json.loads(lines[n + 1])["inclusion_proof"]
            except (IndexError, KeyError, ValueError):
                report.error("malformed", f"line {n + 2 + bundle}: no inclusion proof after the event", event)
        out.append((event, proof))
    return out


def _chain(events: list[tuple[dict[str, Any], dict[str, Any] | None]], report: Report) -> None:
    previous: dict[str, Any] | None = None
    for event, _ in events:
        seq = event["sequence"]
        if report.first_sequence is None:
            report.first_sequence = seq
            if seq == 0 and event["previous_hash"] != GENESIS:
                report.error("chain_break", "sequence 0 does not link to 64 zeros", event)
        report.last_sequence = seq
        if report.organization_id is None:
            report.organization_id = event.get("organization_id")
        elif event.get("organization_id") != report.organization_id:
            report.error("malformed", f"an event of {event.get('organization_id')!r} in {report.organization_id!r}'s export", event)
        if previous is not None:
            if seq <= previous["sequence"]:
                report.error("sequence_gap", f"sequence {seq} after {previous['sequence']}: repeated or out of order", event)
            elif seq == previous["sequence"] + 1 and event["previous_hash"] != previous["hash"]:
                report.error("chain_break", "previous_hash is not the hash of the event before it", event)
            if event["timestamp"] < previous["timestamp"]:
                report.error("timestamp_regression", f"{event['timestamp']} is before {previous['timestamp']}", event)
        previous = event


def _verify_jsonl(lines: list[bytes], key: VerifierKey | None, checkpoint: str | None) -> dict[str, Any]:
    report = Report()
    events = _events(lines, report, bundle=False)
    _chain(events, report)
    if checkpoint is not None:
        # A checkpoint given beside the export that does not open with the
        # key is unusable input (as for verify-export: exit 2), not a finding.
        try:
            cp: Checkpoint | None = Checkpoint.parse(open_note(checkpoint, key) if key else unsigned_text(checkpoint))
        except ValueError as e:
            raise VerifyError(f"--checkpoint: {e}") from e
        if key is None:
            report.warnings.append({"warning": "checkpoint_unchecked", "detail": "no verifier key: the signature was not checked"})
        if cp is not None:
            first = events[0][0]["sequence"] if events else None
            held = [bytes.fromhex(e["hash"]) for e, _ in events]
            contiguous = all(e["sequence"] == i for i, (e, _) in enumerate(events))
            if first != 0 or not contiguous or len(held) < cp.size:
                report.error("truncated", f"the checkpoint covers {cp.size} events; the export does not hold events 0..{cp.size - 1} in order")
            elif merkle_root([leaf_hash(h) for h in held[: cp.size]]) != cp.root:
                report.error("checkpoint_mismatch", f"the tree of the first {cp.size} events does not have the signed root")
    return report.to_dict()


def _verify_bundle(lines: list[bytes], key: VerifierKey | None) -> dict[str, Any]:
    header = json.loads(lines[0])
    report = Report(header.get("organization_id"))
    if header.get("format") != "agenttrace-evidence/1":
        raise VerifyError(f"unknown evidence format {header.get('format')!r}")
    cp = _signed_checkpoint(header["checkpoint"], key, report)
    events = _events(lines[1:], report, bundle=True)
    _chain(events, report)
    if cp is None:
        return report.to_dict()
    for event, proof in events:
        if proof is None:
            continue
        seq = event["sequence"]
        path = [bytes.fromhex(h) for h in proof.get("hashes", [])]
        ok = (
            proof.get("leaf_index") == seq
            and proof.get("tree_size") == cp.size
            and verify_inclusion(seq, cp.size, leaf_hash(bytes.fromhex(event["hash"])), path, cp.root)
        )
        if not ok:
            report.error("checkpoint_mismatch", f"the inclusion proof does not place event {seq} in the signed tree of size {cp.size}", event)
    return report.to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agenttrace-verify", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("file", help="a jsonl export or an evidence bundle")
    parser.add_argument("--key", help="the organization's verifier key (agenttrace-audit keys public --org ORG), or @FILE")
    parser.add_argument("--checkpoint", help="a signed checkpoint note file to hold a jsonl export from sequence 0 to")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        key = None
        if args.key:
            text = Path(args.key[1:]).read_text() if args.key.startswith("@") else args.key
            key = VerifierKey.parse(text)
        checkpoint = Path(args.checkpoint).read_text() if args.checkpoint else None
        report = verify_export(args.file, key, checkpoint)
    except (OSError, VerifyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    elif report["valid"]:
        print(f"valid: {report['total_events']} events", file=sys.stderr)
    else:
        print(f"INVALID: {len(report['errors'])} error(s) in {report['total_events']} events", file=sys.stderr)
        for finding in report["errors"]:
            print(f"  sequence {finding['sequence']}: {finding['error']}: {finding['detail']}", file=sys.stderr)
    return 0 if report["valid"] else 1


if __name__ == "__main__":
    sys.exit(main())
