"""The backup and restore runbook in docs/deployment.md, run exactly as written against a real
PostgreSQL: a hub on the restored database signs the same people in, with their chats and keys."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from tests.chat_support import MODEL, REPLY, chat_settings, fake, new_chat, send, text_of
from tests.deploy_support import ROOT
from tests.fakes.ollama import FakeOllama
from tests.hub import started_hub
from tests.pg import throwaway_database

__all__ = ["fake"]

PASSWORD = "correct horse battery"


def runbook() -> str:
    text = (ROOT / "docs" / "deployment.md").read_text()
    block = re.search(r"<!-- runbook: backup-restore -->\n```sh\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md has no backup-restore runbook"
    return block[1]


async def run_runbook(database_url: str, restore_url: str, workdir: Path) -> None:
    # pg_dump must be at least as new as the server: take the embedded PostgreSQL's client
    # tools (the newest here), so the test runs on the machine's server and the embedded one.
    import pgserver

    tools = Path(pgserver.__file__).parent / "pginstall" / "bin"
    environment = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": database_url,
        "RESTORE_URL": restore_url,
    }
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        runbook(),
        cwd=workdir,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def test_a_restored_backup_brings_back_accounts_chats_and_keys(
    database_url: str, pg_admin_url: str, data_dir: Path, fake: FakeOllama, tmp_path: Path
) -> None:
    async with started_hub(chat_settings(database_url, data_dir, fake.url)) as hub:
        alice = await hub.signup("alice@example.com", PASSWORD)
        chat = await new_chat(alice, title="Before the backup")
        assert text_of(await send(alice, chat["id"], "Tell me about foxes")) == REPLY
        key = (await hub.key_client(alice)).api_key

    async with throwaway_database(pg_admin_url, prefix="llmhub_restored") as restore_url:
        await run_runbook(database_url, restore_url, tmp_path)
        assert (tmp_path / "llmhub.dump").stat().st_size > 0

        # Migrations on, as in production: the dump carries the schema and its version.
        restored = chat_settings(restore_url, data_dir, fake.url, migrate_on_start=True)
        async with started_hub(restored) as hub:
            again = hub.client()
            login = {"email": "alice@example.com", "password": PASSWORD}
            assert (await again.post("/api/auth/login", login)).status == 200
            listed = await again.get("/api/chats")
            assert [c["title"] for c in listed.body["data"]] == ["Before the backup"]
            messages = (await again.get(f"/api/chats/{chat['id']}")).body["chat"]["messages"]
            assert [(m["role"], m["content"]) for m in messages] == [
                ("user", "Tell me about foxes"),
                ("assistant", REPLY),
            ]
            scripted = hub.client(api_key=key)
            models = await scripted.get("/v1/models")
            assert models.status == 200
            assert MODEL.removeprefix("ollama/") in {m["id"] for m in models.body["data"]}
