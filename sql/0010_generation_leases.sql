-- Generation owners hold a lease that they renew, not a lock on one connection: a lost
-- connection or a PostgreSQL restart no longer makes a live process's answers look orphaned.
-- A `streaming` message whose owner's lease has run out (counted from the later of its last
-- renewal and the server's start) was left by a process that is gone, and is interrupted.
CREATE TABLE generation_owners (
    key integer PRIMARY KEY,
    -- Which processes can see each other's pids (boot id and pid namespace), and this one's
    -- pid: a replica on the same machine may retire a dead neighbour's lease at once.
    host text NOT NULL,
    pid integer NOT NULL,
    lease_seconds double precision NOT NULL CHECK (lease_seconds > 0),
    started_at timestamptz NOT NULL DEFAULT now(),
    renewed_at timestamptz NOT NULL DEFAULT now()
);

