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
