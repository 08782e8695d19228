"""Conversations: sending, regenerating and editing (branches of the message tree), search
queries, and export/import. Generations themselves run in `llmhub.generations`."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from providers.base import ChatMessage, ChatOptions, ChatRequest

from . import model_calls
from .auth.identity import Principal
from .errors import BadRequest, NotFound, PayloadTooLarge
from .generations import Generation, GenerationManager, Job
from .repo import chats as repo
from .repo.chats import Chat, ImportedChat, Message

MAX_CONTENT_CHARS = 100_000  # one user message
MAX_SEARCH_WORDS = 16


def check_content(content: str) -> str:
    if len(content) > MAX_CONTENT_CHARS:
        raise PayloadTooLarge(
            f"content: a message may have at most {MAX_CONTENT_CHARS} characters",
            code="content_too_long",
        )
    if not content.strip():
        raise BadRequest("content: must not be empty", code="validation_error")
    return content


async def own_chat(state: Any, principal: Principal, chat_id: UUID) -> Chat:
    chat = await repo.get_chat(state.pool, principal.user.id, chat_id)
    if chat is None:
        raise NotFound("chat not found", code="chat_not_found")
    return chat


def build_request(
    chat: Chat, model: str, history: Sequence[Message], new_text: str | None
) -> ChatRequest:
    messages: list[ChatMessage] = []
    if chat.system_prompt:
        messages.append(ChatMessage("system", chat.system_prompt))
    for m in history:
        # An answer that failed before saying anything carries no conversation.
        if m.content and m.role in ("user", "assistant", "system"):
            messages.append(ChatMessage(m.role, m.content))  # type: ignore[arg-type]
    if new_text is not None:
        messages.append(ChatMessage("user", new_text))
    options = ChatOptions(temperature=chat.temperature, max_tokens=chat.max_tokens)
    return ChatRequest(model=model, messages=messages, options=options)


async def send(
    state: Any,
    principal: Principal,
    chat_id: UUID,
    *,
    content: str,
    parent_id: UUID | None,
    parent_given: bool,
    model: str | None,
) -> Generation:
    """A new user message below `parent_id` (default: the chat's current leaf) and its answer.

    Editing a message is sending the new text with the edited message's parent: a sibling
    branch, the old one kept.
    """
    check_content(content)
    chat = await own_chat(state, principal, chat_id)
    if not parent_given:
        parent_id = chat.current_leaf_id
    history: list[Message] = []
    if parent_id is not None:
        history = await repo.message_path(state.pool, principal.user.id, chat.id, parent_id)
        if not history:
            raise BadRequest("parent_id: no such message in this chat", code="invalid_parent")
        if history[-1].role == "user":
            raise BadRequest(
                "parent_id: a user message must follow an answer, not another user message",
                code="invalid_parent",
            )
    return await _generate(
        state, principal, chat, model, history, parent_id=parent_id, new_text=content
    )


async def regenerate(
    state: Any, principal: Principal, chat_id: UUID, message_id: UUID, model: str | None
) -> Generation:
    """Another answer to the user message `message_id` (or to the one an answer replied to)."""
    chat = await own_chat(state, principal, chat_id)
    target = await repo.get_message(state.pool, principal.user.id, message_id)
    if target is None or target.chat_id != chat.id:
        raise NotFound("message not found", code="message_not_found")
    question_id = target.id if target.role == "user" else target.parent_id
    history = (
        await repo.message_path(state.pool, principal.user.id, chat.id, question_id)
        if question_id
        else []
    )
    if not history or history[-1].role != "user":
        raise BadRequest(
            "only an answer to a user message can be regenerated", code="invalid_parent"
        )
    return await _generate(
        state, principal, chat, model, history, parent_id=question_id, new_text=None
    )


async def _generate(
    state: Any,
    principal: Principal,
    chat: Chat,
    model: str | None,
    history: list[Message],
    *,
    parent_id: UUID | None,
    new_text: str | None,
) -> Generation:
    model_id = model or chat.model
    if not model_id:
        raise BadRequest("model: choose a model for this chat", code="model_required")
    # Unknown model, allow-list and rate limits fail here, as plain JSON errors, before
    # anything is committed. From here on every failure is the answer's `error` state.
    call = await model_calls.admit(state, principal, model_id)
    request = build_request(chat, call.model, history, new_text)
    manager: GenerationManager = state.generations
    exchange = await repo.start_exchange(
        state.pool,
        principal.user.id,
        chat.id,
        parent_id=parent_id,
        content=new_text,
        model=model_id,
        owner=manager.owner_key,
    )
    if exchange is None:
        raise NotFound("chat not found", code="chat_not_found")
    user_text = new_text if new_text is not None else history[-1].content
    job = Job(
        principal=principal,
        call=call,
        request=request,
        model_id=model_id,
        first_exchange=parent_id is None or (new_text is None and len(history) == 1),
        user_text=user_text,
    )
    return manager.launch(job, exchange.user_message, exchange.assistant_message)


# -- search --------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def search_query(text: str) -> str | None:
    """A to_tsquery('simple', …) string: every word must match, the last one as a prefix
    (search as you type). Words are quoted, so nothing the user types is query syntax."""
    words = _WORD.findall(text.lower())[:MAX_SEARCH_WORDS]
    if not words:
        return None
    terms = [f"'{w}'" for w in words]
    terms[-1] += ":*"
    return " & ".join(terms)


def snippet_html(snippet: str) -> str:
    """The snippet HTML-escaped, with matches wrapped in <mark>: safe to use as innerHTML."""
    import html

    escaped = html.escape(snippet, quote=False)
    return escaped.replace(repo.MATCH_START, "<mark>").replace(repo.MATCH_STOP, "</mark>")


# -- export and import ---------------------------------------------------------------------------

EXPORT_FORMAT = "llmhub.chats"
EXPORT_VERSION = 1


def export_document(chats: Sequence[tuple[Chat, list[Message]]]) -> dict[str, Any]:
    """Every stored field, so an import recreates the chats exactly (with new ids)."""
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": datetime.now(UTC).isoformat(),
        "chats": [_export_chat(chat, messages) for chat, messages in chats],
    }


def _export_chat(chat: Chat, messages: list[Message]) -> dict[str, Any]:
    return {
        "id": str(chat.id),
        "title": chat.title,
        "model": chat.model,
        "system_prompt": chat.system_prompt,
        "settings": chat.settings,
        "pinned": chat.pinned,
        "archived": chat.archived,
        "current_leaf_id": str(chat.current_leaf_id) if chat.current_leaf_id else None,
        "created_at": chat.created_at.isoformat(),
        "updated_at": chat.updated_at.isoformat(),
        "messages": [
            {name: _jsonable(getattr(m, name)) for name in repo.IMPORT_MESSAGE_FIELDS}
            for m in messages
        ],
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _to_utc(value: datetime) -> datetime:
    """PostgreSQL stores timestamps in UTC; one that overflows on the way there is refused."""
    try:
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("date out of range") from None


# What the columns hold: integer (int4) counts, and timestamps PostgreSQL can store.
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Timestamp = Annotated[datetime, AfterValidator(_to_utc)]


class ExportedMessage(_Strict):
    id: UUID
    parent_id: UUID | None = None
    role: Literal["system", "user", "assistant"]
    content: str = Field("", max_length=10 * MAX_CONTENT_CHARS)
    reasoning: str | None = None
    attachments: Any = None
    model: str | None = None
    status: Literal["complete", "streaming", "stopped", "error", "interrupted"] = "complete"
    error: str | None = None
    stop_reason: str | None = None
    input_tokens: Count | None = None
    output_tokens: Count | None = None
    cached_tokens: Count | None = None
    usage_exact: bool | None = None
    ttft_ms: Count | None = None
    duration_ms: Count | None = None
    created_at: Timestamp
    updated_at: Timestamp


class ExportedChat(_Strict):
    id: UUID
    title: str = Field(repo.DEFAULT_TITLE, max_length=500)
    model: str | None = None
    system_prompt: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    pinned: bool = False
    archived: bool = False
    current_leaf_id: UUID | None = None
    created_at: Timestamp
    updated_at: Timestamp
    messages: list[ExportedMessage] = Field(default_factory=list)


class ExportDocument(_Strict):
    format: Literal["llmhub.chats"]
    version: Literal[1]
    exported_at: Timestamp | None = None
    chats: list[ExportedChat] = Field(max_length=100_000)


def prepare_import(document: ExportDocument) -> list[ImportedChat]:
    """Fresh ids for every chat and message (an import is a copy, never an overwrite of anyone's
    rows), parents before children; a broken tree is refused."""
    prepared: list[ImportedChat] = []
    for n, chat in enumerate(document.chats):
        where = f"chats.{n}"
        new_ids = {m.id: uuid.uuid4() for m in chat.messages}
        if len(new_ids) != len(chat.messages):
            raise BadRequest(f"{where}.messages: duplicate message id", code="invalid_import")
        ordered = _parents_first(chat.messages, where)
        if chat.current_leaf_id is not None and chat.current_leaf_id not in new_ids:
            raise BadRequest(f"{where}.current_leaf_id: no such message", code="invalid_import")
        rows = [
            (
                new_ids[m.id],
                new_ids[m.parent_id] if m.parent_id else None,
                m.role,
                m.content,
                m.reasoning,
                m.attachments,
                m.model,
                "interrupted" if m.status == "streaming" else m.status,
                m.error,
                m.stop_reason,
                m.input_tokens,
                m.output_tokens,
                m.cached_tokens,
                m.usage_exact,
                m.ttft_ms,
                m.duration_ms,
                m.created_at,
                m.updated_at,
            )
            for m in ordered
        ]
        prepared.append(
            ImportedChat(
                id=uuid.uuid4(),
                title=chat.title,
                model=chat.model,
                system_prompt=chat.system_prompt,
                settings=chat.settings,
                pinned=chat.pinned,
                archived=chat.archived,
                current_leaf_id=new_ids[chat.current_leaf_id] if chat.current_leaf_id else None,
                created_at=chat.created_at,
                updated_at=chat.updated_at,
                messages=rows,
            )
        )
    return prepared


def _parents_first(messages: list[ExportedMessage], where: str) -> list[ExportedMessage]:
    children: dict[UUID | None, list[ExportedMessage]] = {}
    ids = {m.id for m in messages}
    for m in messages:
        if m.parent_id is not None and m.parent_id not in ids:
            raise BadRequest(f"{where}.messages: parent_id {m.parent_id} is not in this chat",
                             code="invalid_import")  # fmt: skip
        children.setdefault(m.parent_id, []).append(m)
    ordered: list[ExportedMessage] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        m = stack.pop()
        ordered.append(m)
        stack.extend(reversed(children.get(m.id, [])))
    if len(ordered) != len(messages):
        raise BadRequest(f"{where}.messages: the parent links form a cycle", code="invalid_import")
    return ordered


def current_branch(chat: Chat, messages: list[Message]) -> list[Message]:
    by_id = {m.id: m for m in messages}
    branch: list[Message] = []
    node = by_id.get(chat.current_leaf_id) if chat.current_leaf_id else None
    while node is not None:
        branch.append(node)
        node = by_id.get(node.parent_id) if node.parent_id else None
    return branch[::-1]


def markdown(chat: Chat, messages: list[Message]) -> str:
    """The current branch as Markdown, for reading (not re-importable: use JSON for that)."""
    lines = [f"# {chat.title}", ""]
    meta = [f"Model: {chat.model}"] if chat.model else []
    meta.append(f"Created: {chat.created_at.strftime('%Y-%m-%d %H:%M UTC')}")
    lines += ["*" + " · ".join(meta) + "*", ""]
    if chat.system_prompt:
        lines += ["## System", "", chat.system_prompt, ""]
    for m in current_branch(chat, messages):
        heading = m.role.capitalize()
        if m.role == "assistant" and m.model:
            heading += f" ({m.model})"
        lines += [f"## {heading}", ""]
        if m.reasoning:
            lines += [
                "<details><summary>Reasoning</summary>",
                "",
                m.reasoning,
                "",
                "</details>",
                "",
            ]
        lines += [m.content, ""]
        if m.status not in ("complete",):
            note = f"*[{m.status}{': ' + m.error if m.error else ''}]*"
            lines += [note, ""]
    return "\n".join(lines).rstrip() + "\n"
