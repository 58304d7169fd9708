"""Run independent read-only statements side by side, each on its own connection.

SQLite has no hash aggregation: every GROUP BY over a million rows is a sort, and one
connection sorts on one core. The analytics statements do not depend on each other, so
they run on `workers` threads; Peewee gives each thread its own connection (SQLite WAL
readers and server sessions run in parallel), and the drivers release the GIL while the
database works. Each worker closes the connection it opened.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed


def parallel_safe(store) -> bool:
    """False where other connections would not see the caller's data: an in-memory
    SQLite database, or rows the caller has not committed yet."""
    in_memory = store.engine == "sqlite" and store.db.database in ("", ":memory:")
    return not in_memory and not store.db.in_transaction()


def fetch_all(store, jobs: dict[str, tuple[str, list]], workers: int,
              done: Callable[[str], None] | None = None) -> dict[str, list[tuple]]:
    """{name: rows} for {name: (sql, params)}; `done(name)` after each statement."""
    def fetch(sql: str, params: list, own: bool) -> list[tuple]:
        try:
            return store.db.execute_sql(sql, params).fetchall()
        finally:
            if own:
                store.db.close()  # this worker thread's connection, not the caller's

    results: dict[str, list[tuple]] = {}
    if workers <= 1 or not parallel_safe(store):
        for name, (sql, params) in jobs.items():
            results[name] = fetch(sql, params, own=False)
            if done:
                done(name)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="whopfunnel-stats") as pool:
        futures = {pool.submit(fetch, sql, params, True): name for name, (sql, params) in jobs.items()}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if done:
                done(futures[future])
    return results
