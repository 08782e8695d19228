-- Accounts: per-user and per-key limits, and admin-set defaults.

-- NULL fields fall back to the admin defaults; keys fall back to their user's limits.
ALTER TABLE users ADD COLUMN limits jsonb NOT NULL DEFAULT '{}';
ALTER TABLE api_keys ADD COLUMN limits jsonb NOT NULL DEFAULT '{}';

CREATE TABLE app_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
