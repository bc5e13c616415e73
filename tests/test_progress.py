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


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def lines_progress(monkeypatch, total, done=0):
    import orchestrator.progress as progress
    clock = Clock()
    monkeypatch.setattr(progress.time, "monotonic", clock)
    return Progress("job", total=total, mode="lines", done=done), clock


def test_rate_and_eta_count_from_the_starting_point(monkeypatch, capsys):
    p, clock = lines_progress(monkeypatch, total=100, done=40)
    assert (p.rate(), p.eta_seconds()) == (0.0, None)  # no time has passed
    clock.now += 10
    p.advance(20)
    assert p.rate() == 2.0 and p.eta_seconds() == 20.0  # 20 done in 10 s, 40 left
    out = capsys.readouterr().out.splitlines()
    assert out == ["[progress] job: 40/100 (0.00/s)", "[progress] job: 60/100 (2.00/s, eta 20s)"]


def test_lines_come_every_tenth_of_the_total(monkeypatch, capsys):
    p, clock = lines_progress(monkeypatch, total=20)
    for _ in range(5):
        clock.now += 1
        p.advance()
    # a line at the start and after every 2 steps (20 // 10)
    assert [line.split(": ")[1].split(" ")[0] for line in capsys.readouterr().out.splitlines()] == [
        "0/20", "2/20", "4/20"]


def test_a_small_total_prints_every_step_and_the_last_one_always(monkeypatch, capsys):
    p, clock = lines_progress(monkeypatch, total=3)
    for _ in range(3):
        clock.now += 1
        p.advance()
    assert len(capsys.readouterr().out.splitlines()) == 4
    q, clock = lines_progress(monkeypatch, total=1000)
    clock.now += 1
    q.advance(999)
    capsys.readouterr()
    clock.now += 1
    q.advance()
    assert capsys.readouterr().out.startswith("[progress] job: 1000/1000")


def test_a_line_comes_after_thirty_seconds_even_without_a_tenth(monkeypatch, capsys):
    p, clock = lines_progress(monkeypatch, total=1000)
    clock.now += 29.9
    p.advance()
    clock.now += 0.1
    p.advance()
    assert [line.split(": ")[1].split(" ")[0] for line in capsys.readouterr().out.splitlines()] == ["0/1000", "2/1000"]


def test_log_in_lines_mode_prints_the_prefixed_message(monkeypatch, capsys):
    p, _ = lines_progress(monkeypatch, total=5)
    capsys.readouterr()
    p.log("hello")
    p.close()
    assert capsys.readouterr().out == "[job] hello\n"
