"""What the files under deploy/ must agree with, read from the code: the `Settings` model (every
key, its environment name) and the AWS calls the providers make (as IAM actions)."""

from __future__ import annotations

import ast
import io
import itertools
import json
import os
import subprocess
import sys
import tokenize
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from pydantic import BaseModel

from llmhub.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose"
KUSTOMIZE = DEPLOY / "kubernetes"
TEMPLATE = DEPLOY / "aws" / "llmhub.yaml"
PREFIX = "LLMHUB_"

# Running answers get shutdown_timeout after SIGTERM, then about this long to be stored as
# interrupted and their clients told (config.example.toml, shutdown_timeout).
STORE_WINDOW = 10.0

# Variables the llmhub container may carry besides LLMHUB_*: read by the libraries llmhub
# uses (asyncpg's libpq-style credentials, botocore's credential chain).
LIBRARY_VARIABLES = frozenset(
    {
        "PGUSER",
        "PGPASSWORD",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    }
)


# -- Settings ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Nested:
    model: type[BaseModel]
    is_list: bool


def _nested_model(annotation: Any) -> _Nested | None:
    """The settings section a field holds (a model, an optional model, a list of models)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _nested_model(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if (found := _nested_model(arg)) is not None:
                return found
        return None
    if origin is list:
        inner = _nested_model(typing.get_args(annotation)[0])
        return _Nested(inner.model, True) if inner is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _Nested(annotation, False)
    return None


def _walk(model: type[BaseModel], path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], bool]]:
    """(path, ends_in_list_of_models) for every field, sections included."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        nested = _nested_model(field.annotation)
        yield here, nested is not None and nested.is_list
        if nested is not None:
            yield from _walk(nested.model, here)


def setting_keys() -> set[str]:
    """Every leaf key, dotted as in TOML: `ollama.url`, `auth.alb.arn`, `oidc.providers.name`."""
    sections = {path for path, _ in _walk(Settings, ()) if _is_section(path)}
    return {".".join(path) for path, _ in _walk(Settings, ()) if path not in sections}


def _is_section(path: tuple[str, ...]) -> bool:
    model: type[BaseModel] = Settings
    for part in path:
        nested = _nested_model(model.model_fields[part].annotation)
        if nested is None:
            return False
        model = nested.model
    return True


def environment_names() -> set[str]:
    """Every LLMHUB_* name pydantic-settings reads: each key or section, nested with `__`, down
    to a list of sections (set as one JSON value: LLMHUB_OIDC__PROVIDERS='[{...}]')."""
    names = set()
    below_lists: set[tuple[str, ...]] = set()
    for path, is_list in _walk(Settings, ()):
        if any(path[: len(p)] == p for p in below_lists):
            continue
        names.add(PREFIX + "__".join(path).upper())
        if is_list:
            below_lists.add(path)
    return names


def settings_from(environment: Mapping[str, str]) -> Settings:
    """Settings as llmhub would build them with exactly these variables (and no TOML file)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    with mock.patch.dict(os.environ, {**clean, **environment}, clear=True):
        return load_settings(Path(os.devnull))


# -- the providers' AWS calls --------------------------------------------------------------------

# Operations authorised under another operation's IAM action (AWS's Bedrock user guide,
# "Prerequisites for running model inference").
_IAM_ACTION_OF = {"Converse": "InvokeModel", "ConverseStream": "InvokeModelWithResponseStream"}


def _snake(name: str) -> str:
    from botocore import xform_name

    return str(xform_name(name))


def bedrock_operations() -> set[str]:
    """The Bedrock and Bedrock Runtime operations the providers call: a method name after a dot
    (`client.list_foundation_models(`) or a string (`getattr(client, "converse")`)."""
    import botocore.session

    session = botocore.session.get_session()
    operations = {
        _snake(op): op
        for service in ("bedrock", "bedrock-runtime")
        for op in session.get_service_model(service).operation_names
    }
    found: set[str] = set()
    for source in sorted((ROOT / "providers").rglob("*.py")):
        tokens = list(tokenize.generate_tokens(io.StringIO(source.read_text()).readline))
        for before, token in itertools.pairwise(tokens):
            if token.type == tokenize.NAME and before.string == "." and token.string in operations:
                found.add(operations[token.string])
            if token.type == tokenize.STRING:
                try:
                    value = ast.literal_eval(token.string)
                except (ValueError, SyntaxError):  # an f-string: not an operation's name
                    value = None
                if isinstance(value, str) and value in operations:
                    found.add(operations[value])
    return found


def uses_guardrails() -> bool:
    """Whether a call passes a guardrail (which needs bedrock:ApplyGuardrail on it)."""
    return any("guardrailIdentifier" in p.read_text() for p in (ROOT / "providers").rglob("*.py"))


def required_bedrock_actions() -> set[str]:
    actions = {"bedrock:" + _IAM_ACTION_OF.get(op, op) for op in bedrock_operations()}
    if uses_guardrails():
        actions.add("bedrock:ApplyGuardrail")
    return actions


# -- the deployment files, as their tools read them ----------------------------------------------

COMPOSE_COMBINATIONS = (
    ("compose.yaml",),
    ("compose.yaml", "compose.gpu.yaml"),
    ("compose.yaml", "compose.hybrid.yaml"),
    ("compose.yaml", "compose.gpu.yaml", "compose.hybrid.yaml"),
)


def compose_config(files: tuple[str, ...]) -> dict[str, Any]:
    """`docker compose config` of these files with .env.example (the real Compose binary)."""
    command = [str(Path(sys.executable).parent / "docker-compose")]
    command += ["--project-directory", str(COMPOSE), "--env-file", str(COMPOSE / ".env.example")]
    for name in files:
        command += ["-f", str(COMPOSE / name)]
    command += ["config", "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of a base or overlay, as a list of objects."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def overlays() -> list[Path]:
    return sorted(p for p in (KUSTOMIZE / "overlays").iterdir() if p.is_dir())


def cloudformation() -> dict[str, Any]:
    from cfnlint.decode import cfn_yaml

    template: dict[str, Any] = cfn_yaml.load(str(TEMPLATE))
    return template


def without_conditions(value: Any) -> list[Any]:
    """The items an `Fn::If` list entry may stand for (both branches, NoValue dropped)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        return [*without_conditions(yes), *without_conditions(no)]
    if value == {"Ref": "AWS::NoValue"}:
        return []
    return [value]
