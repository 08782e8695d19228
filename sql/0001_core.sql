-- Core schema: accounts, chats as one row per message, the model catalog and usage.

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    display_name    text NOT NULL DEFAULT '',
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user', 'pending')),
    disabled        boolean NOT NULL DEFAULT false,
    settings        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Only a hash of the session id is stored: a leaked table does not sign anybody in.
CREATE TABLE sessions (
    id_hash         bytea PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    user_agent      text,
    ip              inet
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);

CREATE TABLE api_keys (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name            text NOT NULL DEFAULT '',
    prefix          text NOT NULL,
    key_hash        bytea NOT NULL UNIQUE,
    allowed_models  text[],
    expires_at      timestamptz,
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_id_idx ON api_keys (user_id);

CREATE TABLE chats (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           text NOT NULL DEFAULT 'New chat',
    model           text,
    system_prompt   text,
    settings        jsonb NOT NULL DEFAULT '{}',
    pinned          boolean NOT NULL DEFAULT false,
    archived        boolean NOT NULL DEFAULT false,
    current_leaf_id uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- The sidebar query: a user's chats, pinned first, newest first, keyset-paginated.
CREATE INDEX chats_user_list_idx ON chats (user_id, archived, pinned DESC, updated_at DESC, id DESC);

-- One row per message; parent_id makes the tree (regenerate and edit create siblings).
-- user_id is denormalised from chats so per-user queries never need the join to stay isolated.
CREATE TABLE messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    chat_id         uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id       uuid REFERENCES messages (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         text NOT NULL DEFAULT '',
    reasoning       text,
    attachments     jsonb,
    model           text,
    status          text NOT NULL DEFAULT 'complete'
                    CHECK (status IN ('complete', 'streaming', 'stopped', 'error', 'interrupted')),
    error           text,
    input_tokens    integer,
    output_tokens   integer,
    cached_tokens   integer,
    usage_exact     boolean,
    ttft_ms         integer,
    duration_ms     integer,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_chat_idx ON messages (chat_id, created_at);
CREATE INDEX messages_parent_idx ON messages (parent_id);
CREATE INDEX messages_streaming_idx ON messages (status) WHERE status = 'streaming';

-- The model catalog: every model seen, with what it can do and whether users may pick it.
CREATE TABLE models (
    id              text PRIMARY KEY,
    provider        text NOT NULL,
    display_name    text,
    capabilities    jsonb NOT NULL DEFAULT '{}',
    context_length  integer,
    size_bytes      bigint,
    enabled         boolean NOT NULL DEFAULT true,
    first_seen_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per model call (UI or /v1). Usage outlives the user's chats and keys.
CREATE TABLE usage (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         uuid REFERENCES users (id) ON DELETE SET NULL,
    api_key_id      uuid REFERENCES api_keys (id) ON DELETE SET NULL,
    message_id      uuid,
    provider        text NOT NULL,
    model           text NOT NULL,
    input_tokens    integer NOT NULL DEFAULT 0,
    output_tokens   integer NOT NULL DEFAULT 0,
    cached_tokens   integer NOT NULL DEFAULT 0,
    exact           boolean NOT NULL DEFAULT true,
    ttft_ms         integer,
    duration_ms     integer,
    status          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_user_time_idx ON usage (user_id, created_at);
CREATE INDEX usage_time_idx ON usage (created_at);
