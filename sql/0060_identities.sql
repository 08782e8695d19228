-- Company sign-in: accounts reached through an OpenID provider or the load balancer.

-- An account made by single sign-on has no password until an admin sets one.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;

-- Who a user is at an identity provider: the issuer and its subject, never just the email
-- (emails change hands; the subject does not). `provider` is the configured name shown to
-- admins ('alb' for the load balancer's header).
CREATE TABLE user_identities (
    issuer          text NOT NULL,
    subject         text NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider        text NOT NULL,
    email           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_login_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user_id_idx ON user_identities (user_id);

-- How a session was started: NULL for a password, else 'oidc:<provider>' or 'alb', so that
-- sign-out knows which identity provider to send the browser to.
ALTER TABLE sessions ADD COLUMN sign_in text;
