-- Which controller serves a load balancer. Only controllers sharing a PostgreSQL
-- database claim load balancers; the table is here so both backends hold the same kinds.
CREATE TABLE lb_claims (id TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL);
