-- Sessions past their refresh lifetime, and revoked ones, are pruned hourly (with their
-- used-token history, by cascade): this index finds them without reading every session.
CREATE INDEX sessions_expiry ON sessions (expires_at);
