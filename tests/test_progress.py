"""Progress off a terminal: sparse plain lines (every 10%), never a redrawn bar."""
from orchestrator.progress import Progress


def test_plain_lines_without_a_terminal(capsys):
    progress = Progress("build", total=100, mode="auto")  # pytest's stdout is not a terminal
    for _ in range(100):
        progress.advance()
    progress.log("done")
    progress.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[progress] build: 0/100")
    assert lines[-2].startswith("[progress] build: 100/100") and lines[-1] == "[build] done"
    assert 10 <= len(lines) <= 13  # one line per 10%, not one per step
    assert all("eta" in line for line in lines[2:-1])


def test_quiet_prints_nothing(capsys):
    progress = Progress("x", total=5, mode="quiet")
    for _ in range(5):
        progress.advance()
    progress.log("hidden")
    assert capsys.readouterr().out == ""
