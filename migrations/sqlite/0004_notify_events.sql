-- PostgreSQL announces committed events with a trigger (LISTEN/NOTIFY across instances).
-- SQLite serves one process, which rings an in-memory bell after each commit: nothing to do.
SELECT 1;
