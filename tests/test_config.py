"""Settings precedence and every way a bad value must stop startup with one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from llmhub.cli import EXIT_CONFIG, main
from llmhub.config import (
    AlbSettings,
    AuthSettings,
    BedrockSettings,
    ConfigError,
    LimitSettings,
    OidcProviderSettings,
    OidcSettings,
    OllamaSettings,
    Settings,
    load_or_create_secret_key,
    load_settings,
)
from tests.serve import run_llmhub


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_are_the_local_profile() -> None:
    s = load_settings()
    assert (s.mode, s.host, s.port) == ("local", "127.0.0.1", 8080)
    assert s.ollama_url == "http://127.0.0.1:11434"
    assert not s.uses_bedrock and not s.secure_cookies and not s.trust_proxy_headers


def test_toml_beats_defaults_env_beats_toml_cli_beats_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = write(
        tmp_path / "c.toml",
        'port = 1111\nhost = "10.0.0.1"\nlog_level = "debug"\n'
        '[ollama]\nurl = "http://toml:11434"\nread_timeout = 12\n',
    )
    s = load_settings(toml)
    assert (s.port, s.host, s.ollama.url, s.ollama.read_timeout) == (
        1111,
        "10.0.0.1",
        "http://toml:11434",
        12,
    )

    monkeypatch.setenv("LLMHUB_PORT", "2222")
    monkeypatch.setenv("LLMHUB_OLLAMA__URL", "http://env:11434")
    s = load_settings(toml)
    # Nested env values merge with, rather than replace, the TOML section.
    assert (s.port, s.ollama.url, s.ollama.read_timeout, s.host) == (
        2222,
        "http://env:11434",
        12,
        "10.0.0.1",
    )

    s = load_settings(toml, {"port": 3333, "host": None})
    assert (s.port, s.host) == (3333, "10.0.0.1")


def test_llmhub_toml_in_the_working_directory_is_read_by_default(tmp_path: Path) -> None:
    write(tmp_path / "llmhub.toml", 'mode = "hybrid"\n[bedrock]\nregion = "eu-west-1"\n')
    s = load_settings()
    assert s.mode == "hybrid" and s.uses_bedrock and s.bedrock.region == "eu-west-1"


def test_bedrock_endpoint_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMHUB_BEDROCK__ENDPOINT_URL", "http://127.0.0.1:9999/")
    assert load_settings().bedrock.endpoint_url == "http://127.0.0.1:9999"


def test_aws_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(
        overrides={"mode": "aws", "database_url": "postgresql://db/x", "secret_key": "k" * 32}
    )
    assert s.secure_cookies and s.trust_proxy_headers and s.json_logs
    assert s.ollama_url is None  # Ollama only when configured in aws mode
    monkeypatch.setenv("LLMHUB_OLLAMA__URL", "http://ollama.internal:11434")
    s = load_settings(
        overrides={"mode": "aws", "database_url": "postgresql://db/x", "secret_key": "k" * 32}
    )
    assert s.ollama_url == "http://ollama.internal:11434"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"mode": "cloud"}, "mode: Input should be 'local', 'hybrid' or 'aws'"),
        ({"port": 70000}, "port: Input should be less than or equal to 65535"),
        ({"database_url": "mysql://x/y"}, "database_url: must be a URL starting with postgres"),
        ({"database_url": "postgresql://h:99999/x"}, "database_url: malformed URL"),
        ({"ollama": {"url": "localhost:11434"}}, "ollama.url: must be a URL starting with http"),
        ({"mode": "aws"}, "database_url: required in aws mode"),
        ({"mode": "aws", "database_url": "postgresql://db/x"}, "secret_key: required in aws"),
        ({"db_pool_min": 5, "db_pool_max": 2}, "db_pool_min: must not exceed db_pool_max"),
        ({"db_pool_max": 1}, "db_pool_max: Input should be greater than or equal to 2"),
        ({"colour": "blue"}, "colour: unknown setting"),
    ],
)
def test_bad_values_name_the_key(overrides: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(overrides=overrides)
    assert str(info.value).startswith(expected)


def test_bad_env_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMHUB_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"^port: "):
        load_settings()


def test_unreadable_and_malformed_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path / "bad.toml", "port = = 1\n"))
    with pytest.raises(ConfigError, match=r"^ollama\.bogus: unknown setting"):
        load_settings(write(tmp_path / "typo.toml", "[ollama]\nbogus = 1\n"))


def test_cli_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "port" in err and "Traceback" not in err


async def test_cli_subprocess_bad_toml_has_no_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "mode = [\n")
    result = await run_llmhub("serve", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "not valid TOML" in result.stderr


def test_example_config_documents_every_key_and_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "config.example.toml"
    text = example.read_text()
    settings = load_settings(example)
    assert settings == load_settings(overrides={})  # the values shown are the defaults
    sections: dict[str, type[BaseModel]] = {
        "ollama": OllamaSettings,
        "bedrock": BedrockSettings,
        "limits": LimitSettings,
        "auth": AuthSettings,
        "auth.alb": AlbSettings,
        "oidc": OidcSettings,
        "oidc.providers": OidcProviderSettings,
    }
    for name in Settings.model_fields:
        if name not in sections:
            assert re.search(rf"^#? ?{name} = ", text, re.M), f"{name} is not documented"
    for section, model in sections.items():
        heading = re.search(rf"^#? ?\[\[?{re.escape(section)}\]\]?\n", text, re.M)
        assert heading, f"[{section}] is not documented"
        body = re.split(r"^#? ?\[", text[heading.end() :], maxsplit=1, flags=re.M)[0]
        for name in model.model_fields:
            if f"{section}.{name}" not in sections:
                assert re.search(rf"^#? ?{name} = ", body, re.M), f"{section}.{name} undocumented"


def test_generated_secret_key_is_kept_across_restarts(tmp_path: Path) -> None:
    s = load_settings(overrides={"data_dir": tmp_path / "d"})
    first = load_or_create_secret_key(s)
    assert len(first) >= 32
    assert load_or_create_secret_key(s) == first
    assert (tmp_path / "d" / "secret_key").stat().st_mode & 0o077 == 0
    configured = load_settings(overrides={"data_dir": tmp_path / "d", "secret_key": "x" * 40})
    assert load_or_create_secret_key(configured) == "x" * 40
