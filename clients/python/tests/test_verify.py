"""The Python verifier agrees with ``agenttrace-audit verify-export`` on
valid and tampered exports and evidence bundles, and checks the service's
own proofs (an independent implementation of the same specs)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import rfc8785
from conftest import ORG, Served, binary

from agenttrace_audit import AuditClient, AuditEventFilter
from agenttrace_audit.verify import (
    Checkpoint,
    VerifierKey,
    leaf_hash,
    open_note,
    verify_consistency,
    verify_export,
    verify_inclusion,
)


async def filled(serve: Served, count: int = 12) -> tuple[AuditClient, str, VerifierKey]:
    """``count`` events stored and covered by a checkpoint: the client, the
    checkpoint note and the organization's verifier key."""
    client = AuditClient(serve.url, serve.token)
    for n in range(count):
        await client.capture_event_durable(
            organization_id=ORG,
            event_type="trace.deleted",
            action="delete",
            actor_type="user",
            actor_id=f"user-{n % 3}",
            actor_email=f"user{n % 3}@example.com",
            resource_type="trace",
            resource_id=f"trace-{n}",
            metadata={"n": n, "note": "ü ✓"},
        )
    key = VerifierKey.parse(serve.cli("keys", "public", "--org", ORG).stdout)
    deadline = time.monotonic() + 10
    while True:  # the checkpoint covering every event (interval 0.2 s)
        note = await client.checkpoint()
        if Checkpoint.parse(open_note(note, key)).size >= count + 1 or time.monotonic() > deadline:
            return client, note, key
        time.sleep(0.1)


def rust_verify(serve: Served, path: Path, *args: str) -> int:
    return serve.cli("verify-export", str(path), *args, check=False).returncode


def python_verify(path: Path, *args: str) -> int:
    """The console script, as an auditor runs it."""
    script = Path(sys.executable).with_name("agenttrace-verify")
    return subprocess.run([str(script), str(path), *args], capture_output=True).returncode


async def test_jsonl_exports_valid_and_tampered(serve: Served, tmp_path: Path) -> None:
    client, note, key = await filled(serve)
    export = tmp_path / "org.jsonl"
    await client.export_events(AuditEventFilter(organization_id=ORG), format="jsonl", destination=export)
    (tmp_path / "cp.note").write_text(note)
    vkey = serve.cli("keys", "public", "--org", ORG).stdout.strip()
    args = ("--checkpoint", str(tmp_path / "cp.note"), "--key", vkey)
    report = verify_export(export, key, note)
    assert report["valid"], report
    assert report["first_sequence"] == 0 and report["total_events"] >= 13
    assert (python_verify(export, *args), rust_verify(serve, export, *args)) == (0, 0)

    lines = export.read_bytes().split(b"\n")
    # 1. One byte of content changed: its hash no longer matches.
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"\n".join([lines[0], lines[1], lines[2].replace(b"trace-1", b"trace-7", 1), *lines[3:]]))
    assert verify_export(edited, key, note)["errors"][0]["error"] == "hash_mismatch"
    assert (python_verify(edited, *args), rust_verify(serve, edited, *args)) == (1, 1)

    # 2. Edited and re-hashed to look consistent: the next link breaks, and
    #    the tree no longer has the signed root.
    event = json.loads(lines[2])
    event["resource_id"] = "trace-7"
    del event["hash"]
    event["hash"] = hashlib.sha256(rfc8785.dumps(event)).hexdigest()
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(b"\n".join([lines[0], lines[1], rfc8785.dumps(event), *lines[3:]]))
    kinds = {e["error"] for e in verify_export(forged, key, note)["errors"]}
    assert {"chain_break", "checkpoint_mismatch"} <= kinds, kinds
    assert (python_verify(forged, *args), rust_verify(serve, forged, *args)) == (1, 1)

    # 3. A checkpoint whose signature does not verify cannot be used by either.
    other = tmp_path / "other.note"
    other.write_text(note.replace(note.split("\n\n")[1][-10:-1], "AAAAAAAAA"))
    bad_args = ("--checkpoint", str(other), "--key", vkey)
    assert (python_verify(export, *bad_args), rust_verify(serve, export, *bad_args)) == (2, 2)
    await client.stop()


async def test_evidence_bundles_valid_and_tampered(serve: Served, tmp_path: Path) -> None:
    client, _, key = await filled(serve)
    vkey = serve.cli("keys", "public", "--org", ORG).stdout.strip()
    bundle = tmp_path / "user1.jsonl"
    response = httpx.get(
        f"{serve.url}/v1/export",
        params={"format": "jsonl", "with_proof": "true", "actor_id": "user-1"},
        headers={"Authorization": f"Bearer {serve.token}"},
    )
    assert response.status_code == 200, response.text
    bundle.write_bytes(response.content)
    report = verify_export(bundle, key)
    assert report["valid"] and report["total_events"] == 4, report
    assert (python_verify(bundle, "--key", vkey), rust_verify(serve, bundle, "--key", vkey)) == (0, 0)

    # An event of the bundle edited and re-hashed: its proof no longer leads to the signed root.
    lines = bundle.read_bytes().split(b"\n")
    event = json.loads(lines[3])
    event["actor_id"] = "user-2"
    del event["hash"]
    event["hash"] = hashlib.sha256(rfc8785.dumps(event)).hexdigest()
    lines[3] = rfc8785.dumps(event)
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(b"\n".join(lines))
    assert "checkpoint_mismatch" in {e["error"] for e in verify_export(forged, key)["errors"]}
    assert (python_verify(forged, "--key", vkey), rust_verify(serve, forged, "--key", vkey)) == (1, 1)
    await client.stop()


async def test_the_services_proofs_verify_here(serve: Served) -> None:
    client, note, key = await filled(serve, count=20)
    cp = Checkpoint.parse(open_note(note, key))
    headers = {"Authorization": f"Bearer {serve.token}"}
    await client.wait_indexed(ORG)
    events = await client.query_events(AuditEventFilter(organization_id=ORG, limit=1000))
    for event in events[: cp.size]:
        proof = httpx.get(f"{serve.url}/v1/events/{event.event_id}/proof", params={"tree_size": cp.size}, headers=headers).json()
        path = [bytes.fromhex(h) for h in proof["proof"]]
        assert verify_inclusion(event.sequence, cp.size, leaf_hash(bytes.fromhex(event.hash)), path, cp.root)
        assert not verify_inclusion(event.sequence, cp.size, leaf_hash(b"\x00" * 32), path, cp.root)
    for first in (1, 2, 3, 7, 8, 13):
        c = httpx.get(f"{serve.url}/v1/consistency", params={"from": first, "to": cp.size}, headers=headers).json()
        path = [bytes.fromhex(h) for h in c["proof"]]
        from_root, to_root = bytes.fromhex(c["from_root"]), bytes.fromhex(c["to_root"])
        assert to_root == cp.root
        assert verify_consistency(first, cp.size, path, from_root, to_root), first
        assert not verify_consistency(first, cp.size, path, to_root, to_root)
    await client.stop()


def test_unusable_input_exits_2(tmp_path: Path) -> None:
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b'{"a":1}')
    assert python_verify(cut) == 2, "no final newline: cut short"
    assert python_verify(tmp_path / "missing.jsonl") == 2
    assert python_verify(cut, "--key", "not-a-key") == 2


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_merkle_roots_match_the_rust_implementation_shape(size: int) -> None:
    # RFC 9162 §2.1.1 by recursion, against the bottom-up implementation.
    from agenttrace_audit.verify import merkle_root, node_hash

    def mth(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        return node_hash(mth(leaves[:k]), mth(leaves[k:]))

    leaves = [leaf_hash(bytes([n]) * 32) for n in range(size)]
    assert merkle_root(leaves) == mth(leaves)
    assert binary()  # the fixture module's binary is found
