"""bmx7wg.log: lines on stderr with the bmx7wg prefix, filtered by level, never raising."""

from bmx7wg.log import DEBUG, INFO, WARNING, Log


def test_lines_by_level_with_prefix(capsys):
    log = Log()
    log.info("hidden before setup: %s", 1)           # as logging, unconfigured: warnings up
    log.warning("%s: peer %s added", "wg0", "AB12CD34")
    log.setup(verbose=False)
    log.debug("not shown")
    log.info("%d peers", 3)
    log.setup(verbose=True)
    log.debug("now shown")
    assert capsys.readouterr().err.splitlines() == [
        "bmx7wg: wg0: peer AB12CD34 added", "bmx7wg: 3 peers", "bmx7wg: now shown"]


def test_a_bad_format_is_shown_not_raised(capsys):
    log = Log()
    log.error("%d peers", "many")
    log.error("50% done")                              # no arguments: the text as it is
    assert capsys.readouterr().err.splitlines() == ["bmx7wg: %d peers ('many',)", "bmx7wg: 50% done"]


def test_sink_keeps_every_level_and_stderr_keeps_its_filter(capsys):
    log = Log()
    log.sink = []
    log.setup(verbose=False)
    log.debug("d %s", 1)
    log.warning("w")
    assert log.sink == [(DEBUG, "d 1"), (WARNING, "w")]
    assert capsys.readouterr().err == "bmx7wg: w\n"
    assert INFO == 20


def test_a_closed_stderr_is_no_error(monkeypatch):
    class Closed:
        def write(self, text):
            raise ValueError("I/O operation on closed file")
    monkeypatch.setattr("sys.stderr", Closed())
    Log().error("still fine")
