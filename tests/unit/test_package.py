"""The wheel: a non-editable install renders and plans exactly as the checkout does."""

import shutil
import subprocess
import sys
from pathlib import Path

import cryptography
import invoke
import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run(*argv, **kw):
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, f"{argv}: {out.stdout}{out.stderr}"
    return out.stdout


def build_wheel(tmp_path):
    """A wheel built from a copy of what the project declares: pyproject.toml, README.md and kubefab/."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "kubefab", src / "kubefab", ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", tmp_path / "dist", src)
    return next((tmp_path / "dist").glob("kubefab-*.whl"))


def fresh_venv(tmp_path, wheel):
    """A new venv holding the wheel; its dependencies come from this interpreter's site-packages (no network)."""
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    # path lines only: the .pth files over there (an editable kubefab among them) are not run
    deps = sorted({Path(m.__file__).resolve().parents[1] for m in (cryptography, invoke, yaml)})
    (site / "kubefab-test-deps.pth").write_text("".join(f"{d}\n" for d in deps))
    return python


def test_an_installed_wheel_plans_exactly_as_the_checkout(tmp_path):
    python = fresh_venv(tmp_path, build_wheel(tmp_path))
    templates = "import kubefab.components.templates as t; print(t.__file__)"
    assert str(tmp_path / "venv") in run(python, "-I", "-c", templates)
    # an installed user's command line (README): the tasks/ collection copied out, kubefab from the wheel
    shutil.copytree(ROOT / "tasks", tmp_path / "cli" / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    state = tmp_path / "state"
    plan = ("cluster.plan", "-i", ROOT / "inventory.toml", "--state-dir", state)
    first = run(python, "-I", "-m", "invoke", "--search-root", tmp_path / "cli", *plan)
    assert "15 created" in first and "/etc/kubernetes/kubefab/init.yaml" in first
    rendered = {p: p.read_bytes() for p in (state / "hosts").rglob("*") if p.is_file()}
    assert len(rendered) > 30
    again = run(sys.executable, "-m", "invoke", *plan, cwd=ROOT)
    assert again == run(python, "-I", "-m", "invoke", "--search-root", tmp_path / "cli", *plan)
    assert "15 kept" in again
    assert {p: p.read_bytes() for p in rendered} == rendered


def test_the_kubefab_command_of_a_wheel_plans_outside_a_checkout_as_invoke_does_in_one(tmp_path):
    python = fresh_venv(tmp_path, build_wheel(tmp_path))
    kubefab = python.parent / "kubefab"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = run(kubefab, "--list", cwd=elsewhere)
    assert "cluster.plan" in listed and "node.join" in listed and "lab." not in listed and "bench." not in listed
    (elsewhere / "invoke.yaml").write_text(f"kubefab:\n  inventory: {ROOT / 'inventory.toml'}\n")
    state = tmp_path / "state"
    installed = run(kubefab, "cluster.plan", "--state-dir", state, cwd=elsewhere)
    checkout = run(sys.executable, "-m", "invoke", "cluster.plan", "--state-dir", state, cwd=ROOT)
    assert "15 created" in installed and "15 kept" in checkout
    assert run(kubefab, "cluster.plan", "-i", ROOT / "inventory.toml", "--state-dir", state, cwd=elsewhere) == checkout
    assert run(kubefab, "--help", "cluster.up", cwd=elsewhere).partition("\n")[2] == \
        run(sys.executable, "-m", "invoke", "--help", "cluster.up", cwd=ROOT).partition("\n")[2]
