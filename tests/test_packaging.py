"""The wheel carries sql/ and static/, and an installed llmhub finds them there."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_install_finds_migrations_and_ui(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("llmhub-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    # Dependencies come from this environment; only llmhub itself is installed from the wheel.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "from llmhub.resources import SQL_DIR, STATIC_DIR; "
        "from llmhub.migrations import load_migrations; "
        "print(SQL_DIR); print(STATIC_DIR); print(len(load_migrations())); "
        "print((STATIC_DIR / 'index.html').is_file())"
    )
    result = subprocess.run(
        [str(target / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    sql_dir, static_dir, count, index = result.stdout.split()
    assert Path(sql_dir).is_relative_to(site) and Path(static_dir).is_relative_to(site)
    assert int(count) == len(list((ROOT / "sql").glob("*.sql")))
    assert index == "True"
