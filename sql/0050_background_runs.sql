-- Background jobs that run once per interval across all replicas (the session sweep): the
-- replica whose update of `ran_at` succeeds runs the job; the others skip it this time.
CREATE TABLE background_runs (
    job     text PRIMARY KEY,
    ran_at  timestamptz NOT NULL
);
