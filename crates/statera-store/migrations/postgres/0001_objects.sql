-- Statera on PostgreSQL: the same (id, doc) table per object kind as on SQLite (the id is the
-- object's key, the doc its JSON as statera-model serialises it), plus what lets several nodes
-- share the database:
--   statera_head         one row; every commit locks it (SELECT ... FOR UPDATE), so commits
--                        are serialised across nodes, and moves rev on by one;
--   statera_log          every row a commit changed, under the commit's rev: a node brings its
--                        in-memory image up to date by reading the log past its own rev;
--   statera_controllers  controllers' heartbeats (the database's clock), for adopting the load
--                        balancers of a controller that went silent.
CREATE TABLE statera_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    rev BIGINT NOT NULL
);
INSERT INTO statera_head (one, rev) VALUES (TRUE, 0);
CREATE TABLE statera_log (
    rev BIGINT NOT NULL,
    n INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    id TEXT NOT NULL,
    doc TEXT,
    -- set on a commit's first row: tells a node whose COMMIT answer was lost whether it landed
    token TEXT,
    PRIMARY KEY (rev, n)
);
CREATE TABLE statera_controllers (
    id TEXT PRIMARY KEY NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE loadbalancers (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE listeners (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE pools (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE members (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE healthmonitors (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE l7policies (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE l7rules (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE quotas (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE flavors (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE flavor_profiles (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE availability_zones (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE availability_zone_profiles (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE amphorae (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE networks (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE subnets (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE ports (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE listener_stats (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE pending_work (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE routers (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE floating_ips (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE security_groups (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE security_group_rules (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE domains (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE projects (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE groups (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE roles (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE role_assignments (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE application_credentials (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE catalog_services (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE catalog_endpoints (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE regions (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE revocations (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE lb_claims (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
