"""Shared fixtures: golden values from ../shared, the Rust `sieve` binary, scratch directories."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("SIEVE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def golden():
    """Reference outputs of sentence-transformers 6.2 / PyTorch, by file stem."""
    folder = SHARED / "golden"
    if not folder.is_dir():
        pytest.skip(f"no golden values at {folder} (set SIEVE_SHARED to the shared folder)")
    return lambda name: json.loads((folder / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def sieve_bin():
    """The `sieve` CLI of the same checkout, as `cargo test --workspace` builds it."""
    candidates = [os.environ.get("SIEVE_BIN")]
    target = os.environ.get("CARGO_TARGET_DIR")
    candidates += [str(Path(target) / "debug" / "sieve")] if target else []
    candidates += [str(REPO / "target" / "debug" / "sieve"), shutil.which("sieve")]
    for candidate in filter(None, candidates):
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no `sieve` binary: run `cargo build` (or set SIEVE_BIN) to compare with the CLI")


def run_cli(sieve_bin, *args):
    """Runs the `sieve` CLI; its stdout, or a test failure that shows its stderr."""
    done = subprocess.run([sieve_bin, *map(str, args)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"`sieve {' '.join(map(str, args))}` exited with {done.returncode}:\n{done.stderr}")
    return done.stdout
