"""The installed package: one ``trainsim`` namespace, its public API, and a clean install.

The repository's folders install as ``trainsim.<folder>``; nothing else may reach
site-packages, and a user's own ``models/`` package or ``engine.py`` must not shadow ours.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import tomllib

import trainsim
from tests.conftest import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
SUBPACKAGES = ("chakra_et", "topology", "collectives", "models", "engine", "studies")


def _package_folders() -> set[str]:
    found = {"trainsim"}
    for top in SUBPACKAGES:
        for init in (REPO_ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO_ROOT).parts
            found.add(".".join(("trainsim", *parts)))
    return found


def test_every_folder_with_an_init_is_listed_as_a_package() -> None:
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert listed == _package_folders()
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"trainsim": "."}


def test_public_api_resolves_and_version_is_the_distributions() -> None:
    assert trainsim.__version__ == PYPROJECT["project"]["version"]
    assert len(set(trainsim.__all__)) == len(trainsim.__all__)
    for name in trainsim.__all__:
        assert getattr(trainsim, name) is not None, name
    for name in ("model_preset", "ParallelPlan", "cluster_system", "predict", "forecast"):
        assert name in trainsim.__all__
    for name in ("sweep", "simulate", "load_workload", "convert_pytorch"):
        assert name in trainsim.__all__


def test_python_dash_m_trainsim_runs_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trainsim", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "predict" in done.stdout


def _readme_python_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _copy_source(dest: Path) -> Path:
    """The files a build reads, copied so the build never writes into the checkout."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md", "__init__.py", "__main__.py", "py.typed"):
        shutil.copy2(REPO_ROOT / name, dest / name)
    for top in SUBPACKAGES:
        shutil.copytree(REPO_ROOT / top, dest / top, ignore=ignore)
    return dest


@pytest.mark.slow
def test_fresh_venv_install_imports_beside_a_users_models_and_engine(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    source = _copy_source(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("trainsim-*.whl")

    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    before = set(os.listdir(site))
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    added = set(os.listdir(site)) - before
    assert {a for a in added if not a.endswith(".dist-info")} == {"trainsim"}
    assert (site / "trainsim" / "py.typed").is_file()
    assert not (site / "trainsim" / "tests").exists()
    # The dependencies come from this environment, after the fresh one's own site-packages.
    deps = sysconfig.get_paths()["purelib"]
    (site / "zz_test_dependencies.pth").write_text(deps + "\n")

    user = tmp_path / "userproj"
    (user / "models").mkdir(parents=True)
    (user / "models" / "__init__.py").write_text("USER_MODELS = True\n")
    (user / "engine.py").write_text("USER_ENGINE = True\n")
    check = (
        "import trainsim, models, engine\n"
        f"assert trainsim.__file__.startswith({str(site)!r}), trainsim.__file__\n"
        "assert models.USER_MODELS and engine.USER_ENGINE\n"
        "from trainsim.models import DeviceSpec\n"
        "from trainsim.engine import predict\n"
    )
    blocks = _readme_python_blocks()
    assert blocks, "README.md has no python example"
    for index, code in enumerate([check, *blocks]):
        script = user / f"block{index}.py"
        script.write_text(code)
        done = subprocess.run(
            [str(python), script.name],
            cwd=user, capture_output=True, text=True, timeout=600,
            env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": ""},
        )  # fmt: skip
        assert done.returncode == 0, f"block {index}:\n{code}\n{done.stderr[-3000:]}"
    cli = subprocess.run(
        [str(env_dir / "bin" / "trainsim"), "demo"],
        cwd=user, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "step time" in cli.stdout
