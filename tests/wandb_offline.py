"""Reads an offline W&B run file (run-<id>.wandb) for the tests.

wandb 0.31 has no public reader; the file is a LevelDB-style log of `Record` protobufs: a
7-byte header (magic "W&B", version), then 32 KiB blocks of chunks, each with a 7-byte header
(crc32, little-endian length, type: 1 full, 2 first, 3 middle, 4 last).
"""
import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024


def records(path: Path):
    data = Path(path).read_bytes()
    assert data[:3] == b":W&" or data[:4] == b":W&B", data[:8]
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left_in_block = BLOCK - (pos % BLOCK)
        if left_in_block < 7:
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:
            continue
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec
            buf = b""


def read_run(run_dir: Path) -> dict:
    """Config, history rows and summary of the offline run(s) under `run_dir`."""
    files = sorted(Path(run_dir).rglob("run-*.wandb"))
    assert files, f"no offline W&B run under {run_dir}"
    out = {"config": {}, "history": [], "summary": {}, "files": files}
    for f in files:
        for rec in records(f):
            kind = rec.WhichOneof("record_type")
            if kind in ("config", "run"):
                for item in (rec.config.update if kind == "config" else rec.run.config.update):
                    out["config"][item.key] = json.loads(item.value_json)
            elif kind == "history":
                out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                       for i in rec.history.item})
            elif kind == "summary":
                for item in rec.summary.update:
                    out["summary"][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out
