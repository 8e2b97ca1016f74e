#!/usr/bin/env python3
"""Pack tools/verify_export.py and the stdlib-only modules it uses into one file an auditor
runs with any Python 3.11: `python3 verify_export.pyz --csv ... --proof ... --public-key ...`.

    python3 tools/build_audit_kit.py [OUTPUT]     (default: dist/verify_export.pyz)"""

import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("__init__.py", "chain.py", "merkle.py", "ed25519.py", "verification.py")


def build(output: Path) -> Path:
    with tempfile.TemporaryDirectory() as folder:
        kit = Path(folder)
        (kit / "history").mkdir()
        for name in MODULES:
            shutil.copy(ROOT / "history" / name, kit / "history" / name)
        shutil.copy(ROOT / "tools" / "verify_export.py", kit / "__main__.py")
        output.parent.mkdir(parents=True, exist_ok=True)
        zipapp.create_archive(kit, output, interpreter="/usr/bin/env python3")
    return output


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist" / "verify_export.pyz"))
