-- The key manager's objects (Barbican v1 subset): secrets (payloads sealed, never in clear)
-- and containers of secret references; the id of the key-encryption key they are sealed with.
CREATE TABLE secrets (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE secret_containers (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE key_manager_keys (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
