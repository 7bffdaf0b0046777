import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
# subprocesses (`python3 -m bmx7wg ...`) must import the same tree
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
os.environ.setdefault("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")

# Facts recorded from real systems live beside the checkout (../shared), in CI too.
SHARED = ROOT.parent / "shared"
