-- The key manager's objects (Barbican v1 subset): secrets (payloads sealed, never in clear)
-- and containers of secret references.
CREATE TABLE secrets (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE secret_containers (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
