"""Claims on background jobs, so one replica (not every one) runs each round."""

from __future__ import annotations

from . import Db


async def claim(db: Db, job: str, every_seconds: float) -> bool:
    """True for the one caller that claims `job` when it has not run in `every_seconds`.

    One statement: concurrent claimers queue on the row, and the later ones see the new
    `ran_at` and get nothing back.
    """
    claimed = await db.fetchval(
        "INSERT INTO background_runs AS r (job, ran_at) VALUES ($1, now()) "
        "ON CONFLICT (job) DO UPDATE SET ran_at = excluded.ran_at "
        "WHERE r.ran_at <= now() - make_interval(secs => $2) RETURNING true",
        job,
        every_seconds,
    )
    return bool(claimed)
