-- Every object kind has its own table of (id, doc): the id is the object's key,
-- the doc its JSON form as statera-model serialises it. Reads are served from
-- the in-memory image the store keeps; SQL is the durable record.
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
-- The ordered record of pending work: one row per change the controller owes a
-- load balancer, written in the same transaction as the change itself.
CREATE TABLE pending_work (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
