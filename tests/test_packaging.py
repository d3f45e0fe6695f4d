"""What ships beside the code: the Dockerfile (linted; no Docker engine runs here) and the
promise that the image installs what `make setup` installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_like_the_makefile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for text in (dockerfile, makefile):
        assert "torch==2.13.0" in text
    assert re.search(r"pip install .*\.\s*$", dockerfile, re.M), "the image installs the project"
    assert "USER 10001" in dockerfile and "footnote index" in dockerfile
    assert '"--host", "0.0.0.0"' in dockerfile


def test_torch_is_pinned_to_the_cpu_build_version() -> None:
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()
