"""scripts/horovod_build_check.py: the build check that install_horovod.sh runs, over real `--check-build` text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

SCRIPT = ROOT / "scripts" / "horovod_build_check.py"
# `horovodrun --check-build` of this project's CPU build (scripts/install_horovod.sh), verbatim.
GLOO_ONLY = """Horovod v0.28.1:

Available Frameworks:
    [ ] TensorFlow
    [X] PyTorch
    [ ] MXNet

Available Controllers:
    [ ] MPI
    [X] Gloo

Available Tensor Operations:
    [ ] NCCL
    [ ] DDL
    [ ] CCL
    [ ] MPI
    [X] Gloo
"""
WITH_NCCL = GLOO_ONLY.replace("[ ] NCCL", "[X] NCCL")


def _check(output: str, flavour: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), flavour], input=output, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(("output", "flavour"), [(GLOO_ONLY, "cpu"), (WITH_NCCL, "cpu"), (WITH_NCCL, "cuda")])
def test_builds_with_what_the_flavour_needs_pass(output, flavour):
    assert _check(output, flavour).returncode == 0


def test_a_gloo_only_build_fails_the_cuda_flavour_naming_nccl():
    result = _check(GLOO_ONLY, "cuda")
    assert result.returncode == 1 and "lacks NCCL, which the cuda flavour needs" in result.stderr


def test_a_build_without_pytorch_fails_every_flavour():
    result = _check(GLOO_ONLY.replace("[X] PyTorch", "[ ] PyTorch"), "cpu")
    assert result.returncode == 1 and "lacks PyTorch" in result.stderr


def test_the_installed_build_is_what_horovodrun_reports():
    """The text above is still what this machine's build prints (so the rule is tested on the real format)."""
    horovodrun = Path(sys.executable).parent / "horovodrun"
    out = subprocess.run([str(horovodrun), "--check-build"], capture_output=True, text=True, check=True).stdout
    assert [line.strip() for line in out.splitlines()] == [line.strip() for line in GLOO_ONLY.splitlines()]
    assert _check(out, "cpu").returncode == 0 and _check(out, "cuda").returncode == 1
