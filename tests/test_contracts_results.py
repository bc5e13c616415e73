"""Contracts of the result store: a kill at any byte leaves exactly the complete rows, a torn
last line is never a row, appending after it yields a clean file, every row is on disk and
fsynced before its append returns, a corrupt line ends the clean prefix, a repeated key keeps its
first row."""
import json
import os

import pytest

from orchestrator.results import ResultStore


def written(tmp_path, count=3):
    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    for i in range(count):
        store.append(f"k{i}", {"problem": i}, {"correct": i % 2 == 0, "answer": str(i)})
    store.close()
    return path, path.read_bytes()


def test_a_kill_at_any_byte_keeps_exactly_the_complete_rows(tmp_path):
    path, data = written(tmp_path)
    line_ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    for cut in range(len(data) + 1):
        path.write_bytes(data[:cut])
        store = ResultStore(path)
        complete = sum(end <= cut for end in line_ends)
        assert list(store.rows) == [f"k{i}" for i in range(complete)], cut
        store.append("new", {"problem": 99}, {"correct": True})
        store.close()
        lines = path.read_bytes().split(b"\n")
        assert lines[-1] == b"" and [json.loads(line)["key"] for line in lines[:-1]] == \
            [f"k{i}" for i in range(complete)] + ["new"], cut


def test_a_whole_row_without_its_newline_is_torn_not_accepted(tmp_path):
    path, data = written(tmp_path, 2)
    path.write_bytes(data[:-1])  # the last row's JSON is complete; only the newline is missing
    store = ResultStore(path)
    assert list(store.rows) == ["k0"]
    assert path.read_bytes() == data[:data.index(b"\n") + 1]  # the torn tail is cut off
    store.close()


def test_rows_round_trip_and_a_key_is_written_once(tmp_path):
    path, _ = written(tmp_path, 2)
    store = ResultStore(path)
    assert store.rows["k1"].unit == {"problem": 1} and store.rows["k1"].result == {"correct": False, "answer": "1"}
    assert [r.key for r in store.select(["k1", "absent", "k0"])] == ["k1", "k0"]
    with pytest.raises(ValueError):
        store.append("k0", {}, {})
    store.close()
    assert len(path.read_bytes().splitlines()) == 2


def test_each_row_is_in_the_file_and_fsynced_before_append_returns(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    rows_at_fsync = []
    real_fsync = os.fsync

    def fsync(fd):
        rows_at_fsync.append(path.read_bytes().count(b"\n"))  # what another reader sees now
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    for i in range(3):
        store.append(f"k{i}", {"problem": i}, {"correct": True})
        assert rows_at_fsync == list(range(1, i + 2))  # one fsync per row, once the row was written
    store.close()


def row_line(key, value):
    return (json.dumps({"key": key, "unit": {"problem": key}, "result": {"v": value}, "finished_at": 1.0}) + "\n").encode()


def test_a_key_written_twice_keeps_its_first_row(tmp_path):
    """A file holding a key twice (two writers raced) counts the unit once, with its first row:
    the one a resumed run already skipped on."""
    path = tmp_path / "results.jsonl"
    path.write_bytes(row_line("k0", 1) + row_line("k1", 2) + row_line("k0", 3))
    store = ResultStore(path)
    assert list(store.rows) == ["k0", "k1"]
    assert (store.rows["k0"].result, store.rows["k1"].result) == ({"v": 1}, {"v": 2})
    store.close()


@pytest.mark.parametrize("bad", [b"garbage\n", b'{"key": "k9", "unit"\n'])
def test_a_complete_but_corrupt_line_ends_the_rows_and_the_file_is_cut_there(tmp_path, bad):
    """Reading stops at the first line that is not a row: the store is the clean prefix before
    it, the file is cut to exactly that prefix (the rows after it are dropped with it), and the
    next append starts on its own line."""
    path = tmp_path / "results.jsonl"
    path.write_bytes(row_line("k0", 1) + bad + row_line("k1", 2))
    store = ResultStore(path)
    assert list(store.rows) == ["k0"]
    assert path.read_bytes() == row_line("k0", 1)
    store.append("new", {}, {"v": 4})
    store.close()
    assert [json.loads(line)["key"] for line in path.read_bytes().splitlines()] == ["k0", "new"]


def test_an_appended_row_is_one_json_line_with_its_four_fields(tmp_path, monkeypatch):
    import orchestrator.results as results
    monkeypatch.setattr(results.time, "time", lambda: 123.5)
    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    row = store.append("k", {"problem": 1}, {"answer": "5"})
    store.close()
    assert (row.key, row.unit, row.result, row.finished_at) == ("k", {"problem": 1}, {"answer": "5"}, 123.5)
    assert path.read_bytes().count(b"\n") == 1
    assert json.loads(path.read_bytes()) == {"key": "k", "unit": {"problem": 1}, "result": {"answer": "5"},
                                             "finished_at": 123.5}
    reopened = ResultStore(path)
    assert reopened.rows["k"] == row and "k" in reopened and "other" not in reopened
    reopened.close()


def test_a_clean_file_is_left_byte_for_byte_and_a_new_store_starts_empty(tmp_path):
    path, data = written(tmp_path, 2)
    ResultStore(path).close()
    assert path.read_bytes() == data
    fresh = ResultStore(tmp_path / "new.jsonl")
    assert fresh.rows == {} and (tmp_path / "new.jsonl").exists()
    fresh.close()


def test_rows_hold_numpy_values_and_objects_as_plain_json(tmp_path):
    import numpy as np
    from dataclasses import dataclass

    @dataclass
    class Point:
        x: int

    path = tmp_path / "results.jsonl"
    store = ResultStore(path)
    store.append("k", {}, {"scores": np.array([0.5, 1.0]), "point": Point(3)})
    store.close()
    assert json.loads(path.read_bytes())["result"] == {"scores": [0.5, 1.0], "point": {"x": 3}}
    store = ResultStore(tmp_path / "other.jsonl")
    with pytest.raises(TypeError, match="not JSON serialisable"):
        store.append("k", {}, {"bad": {1, 2}})
    store.close()


def test_unit_keys_are_twenty_hex_characters():
    from orchestrator.results import unit_key
    key = unit_key("tts", {"id": "p1"})
    assert len(key) == 20 and int(key, 16) >= 0


def test_runs_root_prefers_the_configured_folder_then_the_environment(monkeypatch, tmp_path):
    from pathlib import Path
    from orchestrator.results import runs_root
    monkeypatch.setenv("SCALERUN_RUNS_DIR", str(tmp_path / "env"))
    assert runs_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert runs_root(None) == tmp_path / "env"
    monkeypatch.delenv("SCALERUN_RUNS_DIR")
    assert runs_root(None) == Path("runs")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runs_root("~/r") == tmp_path / "r"


def test_atomic_writes_replace_the_file_and_leave_no_temporary(tmp_path):
    from orchestrator.results import write_json_atomic, write_text_atomic
    path = tmp_path / "summary.json"
    path.write_text("old")
    write_json_atomic(path, {"a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    text = tmp_path / "report.md"
    write_text_atomic(text, "# hi\n")
    assert text.read_text() == "# hi\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "summary.json"]
