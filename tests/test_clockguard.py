from bmx7wg import clockguard


def test_record_never_goes_backwards(tmp_path):
    p = str(tmp_path / "k.lastrun")
    assert clockguard.last_run(p) is None and clockguard.behind_until(p, 100) is None
    clockguard.record(p, 1000)
    clockguard.record(p, 900)          # a clock behind must not overwrite the real last run
    assert clockguard.last_run(p) == 1000
    assert clockguard.behind_until(p, 950) == 1000
    assert clockguard.behind_until(p, 1001) is None
    clockguard.record(p, 2000)
    assert clockguard.last_run(p) == 2000


def test_garbage_record_is_ignored(tmp_path):
    p = tmp_path / "k.lastrun"
    p.write_text("yesterday\n")
    assert clockguard.behind_until(str(p), 5) is None


def test_quick_restart_within_the_same_second_is_not_behind(tmp_path):
    """Stopped at x.6 s, started again at x.9 s: the clock did not go back (a rounded record
    said x+1 and switched the restarted helper to a session key and a new port)."""
    p = str(tmp_path / "k.lastrun")
    clockguard.record(p, 1000.6)
    assert clockguard.behind_until(p, 1000.9) is None
    assert clockguard.behind_until(p, 1000.2) == 1000.6
