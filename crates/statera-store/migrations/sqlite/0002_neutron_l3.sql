-- Routers, floating IPs and security groups (the network driver's input).
CREATE TABLE routers (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE floating_ips (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE security_groups (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
CREATE TABLE security_group_rules (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
