-- Chats: search, generation bookkeeping, and the indexes the chat queries need.

-- Full-text search over message content. 'simple' (no stemming, no stop words) rather than
-- 'english': chats are in any language and full of code and identifiers, and prefix matching of
-- the last word (`pyth:*`) only works predictably on unstemmed lexemes.
ALTER TABLE messages
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED;
CREATE INDEX messages_search_idx ON messages USING gin (search);
-- Per-user filters (search isolation) and ON DELETE CASCADE from users.
CREATE INDEX messages_user_idx ON messages (user_id);

-- Why the model stopped (stop, length, content_filter, cancelled, error), as the provider said.
ALTER TABLE messages ADD COLUMN stop_reason text;
-- The llmhub process running a `streaming` message: the key of a session-level advisory lock
-- it holds. A streaming row whose owner holds no lock was left by a crash and is interrupted.
ALTER TABLE messages ADD COLUMN generation_owner integer;
