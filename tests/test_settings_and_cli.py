"""Settings, config.toml and the command line as an operator meets them."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import main
from bot.settings import Settings
from scenarios.rules import Rules, RulesError, load_rules
from storage.migrate import head_revision

ROOT = Path(__file__).resolve().parent.parent


def run_main(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:abc")
    monkeypatch.setenv("ADMIN_IDS", "1, 22;333")
    monkeypatch.setenv("DATABASE_URL", "postgresql://shop@db/shop")
    monkeypatch.setenv("TIMEZONE", "Europe/Kyiv")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings(_env_file=None)
    assert settings.admin_ids == (1, 22, 333)
    assert settings.database_url == "postgresql+asyncpg://shop@db/shop"
    assert settings.zone.key == "Europe/Kyiv"
    assert settings.log_level == "DEBUG"
    assert settings.bot_token is not None
    assert "123:abc" not in repr(settings)
    assert "123:abc" not in str(settings.model_dump())


def test_settings_are_read_from_a_dot_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("STAFF_CHAT_ID=-100123\nDEFAULT_LOCALE=uk\n", encoding="utf-8")
    settings = Settings(_env_file=env_file)
    assert settings.staff_chat_id == -100123
    assert settings.default_locale == "uk"


def _documented(table: dict[str, Any], model: BaseModel, where: str = "") -> None:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{where}{name}"
        if isinstance(value, BaseModel):
            assert name in table, f"config.example.toml lacks the [{key}] section"
            _documented(table[name], value, f"{key}.")
        elif name in table:
            parsed = type(model).model_validate({**model.model_dump(), name: table[name]})
            assert getattr(parsed, name) == value, f"{key}: example differs from the default"
        else:
            # Optional keys are shown commented out: "# key = ..."
            text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
            assert f"# {name} = " in text, f"config.example.toml does not document {key}"
        del field


def test_config_example_documents_every_rule_with_its_default() -> None:
    example = tomllib.loads((ROOT / "config.example.toml").read_text(encoding="utf-8"))
    _documented(example, Rules())
    assert load_rules(ROOT / "config.example.toml", required=True) == Rules()


def test_bad_rules_name_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[scheduler]\ntick_seconds = -1\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"config.toml: scheduler.tick_seconds: .*greater than 0"):
        load_rules(config, required=True)
    config.write_text("[shop\n", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(config, required=True)
    config.write_text("[shop]\ncolour = 'red'\n", encoding="utf-8")
    with pytest.raises(RulesError, match=r"shop.colour: Extra inputs are not permitted"):
        load_rules(config, required=True)
    assert load_rules(tmp_path / "absent.toml", required=False) == Rules()
    with pytest.raises(RulesError, match="file not found"):
        load_rules(tmp_path / "absent.toml", required=True)


def test_help_lists_commands_and_settings(tmp_path: Path) -> None:
    result = run_main("--help", env={}, cwd=tmp_path)
    assert result.returncode == 0
    for word in ("run", "migrate", "BOT_TOKEN", "DATABASE_URL", "ADMIN_IDS", "TELEGRAM_API_BASE"):
        assert word in result.stdout


def test_without_a_token_the_process_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    result = run_main(env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: BOT_TOKEN is not set: "
        "get a token from @BotFather and run BOT_TOKEN=... python main.py"
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BOT_TOKEN": "nonsense"}, "error: BOT_TOKEN is not a valid bot token"),
        ({"BOT_TOKEN": "1:a", "TIMEZONE": "Mars/Base"}, "error: invalid setting TIMEZONE"),
        (
            {"BOT_TOKEN": "1:a", "DATABASE_URL": "mysql://x/y"},
            "error: invalid setting DATABASE_URL",
        ),
        ({"BOT_TOKEN": "1:a", "API_PORT": "http"}, "error: invalid setting API_PORT"),
        ({"BOT_TOKEN": "1:a", "ADMIN_IDS": "1,bob"}, "error: invalid setting ADMIN_IDS"),
        (
            {"BOT_TOKEN": "1:a", "CONFIG_FILE": "missing.toml"},
            "error: missing.toml: file not found",
        ),
    ],
)
def test_a_bad_setting_is_one_clear_line_and_exit_status_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper() in {field.upper() for field in Settings.model_fields}:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        main.main([])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(message)


def test_migrate_creates_the_sqlite_file_and_exits(tmp_path: Path) -> None:
    result = run_main("migrate", env={}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "bot.sqlite3").exists()
    assert f"database migrated to schema {head_revision()}" in result.stderr
    again = run_main("migrate", env={}, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
