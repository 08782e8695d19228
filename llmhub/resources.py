"""Where `sql/` and `static/` are: in the wheel (llmhub/_data) or at the repository top."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_path(name: str) -> Path:
    bundled = _PACKAGE / "_data" / name
    return bundled if bundled.is_dir() else _PACKAGE.parent / name


SQL_DIR = data_path("sql")
STATIC_DIR = data_path("static")
