-- The built-in Keystone's objects (domains, projects, users, groups, roles, role
-- assignments, application credentials, the catalog, token revocations).
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
