import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
# subprocesses (`python3 -m bmx7wg ...`) must import the same tree
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")

# Facts recorded from real systems live beside the checkout (../shared), in CI too.
SHARED = ROOT.parent / "shared"


class Logged(list):
    """(level, message) pairs bmx7wg.log said during a test."""

    @property
    def text(self) -> str:
        return "\n".join(message for _, message in self)

    def times(self, part: str) -> int:
        return sum(part in message for _, message in self)


@pytest.fixture
def logged():
    from bmx7wg.log import log
    log.sink = Logged()
    try:
        yield log.sink
    finally:
        log.sink = None
