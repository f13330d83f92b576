"""Fixtures: the real ``agenttrace-audit`` binary, ``serve`` on a free
loopback port with its own data directory, and an admin token.

The binary is ``$AGENTTRACE_AUDIT_BIN``, else ``target/debug/agenttrace-audit``
of this repository (built with cargo when missing).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[3]
ORG = "org-123"


def binary() -> str:
    given = os.environ.get("AGENTTRACE_AUDIT_BIN")
    if given:
        return given
    built = REPO / "target" / "debug" / "agenttrace-audit"
    if not built.is_file():
        subprocess.run(["cargo", "build", "-q", "-p", "agenttrace-audit"], cwd=REPO, check=True)
    return str(built)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    data: Path
    url: str
    token: str
    process: subprocess.Popen[bytes]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The binary on this data directory."""
        return subprocess.run(
            [binary(), "--data-dir", str(self.data), *args], capture_output=True, text=True, check=check
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


def start_serve(data: Path, env: dict[str, str] | None = None) -> Served:
    data.mkdir(parents=True, exist_ok=True)
    token = subprocess.run(
        [binary(), "--data-dir", str(data), "keys", "create", "--org", ORG, "--scopes", "ingest,read,export,verify,admin"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    process = subprocess.Popen(
        [binary(), "--data-dir", str(data), "serve", "--listen", f"127.0.0.1:{port}"],
        env={**os.environ, "AUDIT_CHECKPOINT_INTERVAL": "0.2", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        if process.poll() is not None:
            raise RuntimeError(f"serve exited with {process.returncode} before listening")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Served(data, url, token, process)
        except httpx.HTTPError:
            time.sleep(0.025)
    process.kill()
    raise RuntimeError("serve did not listen")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Served]:
    served = start_serve(tmp_path / "data")
    yield served
    served.stop()
