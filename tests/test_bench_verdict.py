"""`make bench`'s verdict: each target judged over every size; RSS judged under musl only."""

import importlib.util
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")

GLIBC = "python3 3.11.7 (x86_64-linux-gnu), this machine's"
GLIBC32 = "python3 3.11.2 (i386-linux-gnu), 32-bit"
MUSL = "python3 3.13.5 (x86_64-linux-musl)"


@pytest.fixture(scope="module")
def run():
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location("bench_run", os.path.join(BENCH, "run.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCH)


def rss(mb, peak):
    return {"rss_mb": mb, "peak_mb": peak}


def row(n, musl_idle=None, musl_live=None, *, glibc=(12.0, 12.0), p95=0.004, one_writes=1):
    """One size's results as main() gathers them: raw cold, raw one, core, latency runs."""
    lat = {"p95": p95, **rss(*glibc), "live": rss(*glibc), "rss32": rss(10.0, 10.0)}
    if musl_idle:
        lat[MUSL] = rss(*musl_idle)
        lat[MUSL + " with live sessions"] = rss(*musl_live)
    core = {"cold": 1.2, "noop_writes": 0, "one_writes": one_writes, "one": 0.0017}
    return (n, 0.8, 0.0013, core, lat)


def test_targets_met_under_musl_while_glibc_is_shown_not_judged(run):
    rows = [row(100, (9.7, 9.7), (9.8, 9.8)), row(5000, (18.4, 19.2), (19.1, 19.4), glibc=(20.6, 22.0))]
    lines = run.verdict(rows, GLIBC, GLIBC32, [MUSL])
    assert not any("MISSED" in line for line in lines), lines
    assert f"  RSS <= 20 MB, {MUSL}: met at every size (largest 19.4 MB)" in lines
    assert f"  RSS, {GLIBC}: largest 22.0 MB (N=5000); glibc: shown, not judged" in lines
    assert f"  RSS, {GLIBC32}: largest 10.0 MB (N=100); glibc: shown, not judged" in lines
    assert lines[-1].endswith("met under all 1 musl python3s measured")


def test_a_musl_peak_over_20_mb_is_missed_at_its_size(run):
    rows = [row(100, (9.7, 9.7), (9.8, 9.8)), row(5000, (18.4, 19.2), (19.9, 20.3))]
    lines = run.verdict(rows, GLIBC, GLIBC32, [MUSL])
    assert f"  RSS <= 20 MB, {MUSL}: MISSED at N=5000 (20.3 MB)" in lines
    assert lines[-1].endswith("(OpenWrt's C library): MISSED")


def test_rss_unjudged_without_a_musl_python3_says_so(run):
    lines = run.verdict([row(100), row(5000, glibc=(20.6, 22.0))], GLIBC, GLIBC32, [])
    assert "NOT MEASURED" in lines[-1] and "BMX7WG_BENCH_PYTHONS" in lines[-1]


def test_other_targets_are_judged_at_every_size(run):
    lines = run.verdict([row(100), row(5000, p95=0.061, one_writes=2)], GLIBC, GLIBC32, [])
    assert "  one change 1 write: MISSED at N=5000 (2)" in lines
    assert "  event->peer p95 <= 50 ms: MISSED at N=5000 (61.0 ms)" in lines
    assert "  no-op 0 writes: met at every size (0)" in lines
