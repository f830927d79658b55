"""The built-in Keystone's admin API driven by the real `openstack` CLI (python-openstackclient)
against a real `statera serve`.

The server runs in the default auth mode, `builtin`, and the CLI signs in as its bootstrap
admin with the `clouds.yaml` the first start wrote (auth type password, as any cloud's
operator). Application credentials are covered by the Rust tests
(crates/statera-api/tests/keystone_admin.rs).

The steps share one server and a `state` dict and run in file order; a step whose prerequisite
failed fails too. They run once per store backend (`store_kind`): on PostgreSQL the identity
objects live in the server's own database.
"""

from __future__ import annotations

import pytest

import pg_support
from conftest import OpenStackCli, http_get, start_statera


@pytest.fixture(scope="module")
def state(store_kind):
    return {}


@pytest.fixture(scope="module")
def ks(store_kind, request):
    with pg_support.store_url(store_kind, request) as store, start_statera(auth_args=[], store=store) as server:
        # The CLI starts with version discovery at /v3; without it nothing below can run.
        discovery = http_get(server.endpoint + "/v3")
        if discovery.status != 200:
            pytest.fail(f"GET /v3 (identity version discovery) answered {discovery.status}", pytrace=False)
        yield OpenStackCli(server.endpoint, clouds_yaml=server.data_dir / "data" / "clouds.yaml")


def need(state, *keys):
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step failed, so {', '.join(missing)} is unknown", pytrace=False)
    return [state[k] for k in keys] if len(keys) > 1 else state[keys[0]]


def test_domain_create_list_show(ks, state):
    d = ks.json("domain", "create", "--description", "e2e", "e2e-dev")
    assert d["name"] == "e2e-dev" and d["enabled"] is True and len(d["id"]) == 32
    state["domain"] = d["id"]
    names = [x["Name"] for x in ks.json("domain", "list")]
    assert "e2e-dev" in names
    assert ks.json("domain", "show", d["id"])["description"] == "e2e"
    dup = ks.run("domain", "create", "e2e-dev", expect_ok=False)
    assert "Conflict occurred attempting to store domain" in dup.stderr, dup.describe()


def test_project_create(ks, state):
    domain = need(state, "domain")
    p = ks.json("project", "create", "--domain", domain, "--description", "web tier", "web")
    assert p["domain_id"] == domain and p["parent_id"] == domain and p["is_domain"] is False
    state["project"] = p["id"]


def test_user_create_list_show_set(ks, state):
    domain = need(state, "domain")
    u = ks.json("user", "create", "--domain", domain, "--password", "s3cret-e2e", "--email", "a@example.org", "alice")
    assert u["name"] == "alice" and u["domain_id"] == domain
    assert "password" not in u and "s3cret-e2e" not in str(u)
    state["user"] = u["id"]
    listed = ks.json("user", "list", "--domain", domain)
    assert [x["Name"] for x in listed] == ["alice"]
    ks.run("user", "set", "--email", "alice@example.org", u["id"])
    assert ks.json("user", "show", u["id"])["email"] == "alice@example.org"


def test_group_membership(ks, state):
    domain, user = need(state, "domain", "user")
    g = ks.json("group", "create", "--domain", domain, "ops")
    state["group"] = g["id"]
    ks.run("group", "add", "user", g["id"], user)
    out = ks.run("group", "contains", "user", g["id"], user)
    assert f"{user} in group {g['id']}" in out.stdout, out.describe()
    assert [x["Name"] for x in ks.json("user", "list", "--group", g["id"])] == ["alice"]


def test_roles_and_implied_roles(ks, state):
    member = ks.json("role", "create", "e2e-member")
    reader = ks.json("role", "create", "e2e-reader")
    state["member"], state["reader"] = member["id"], reader["id"]
    ks.run("implied", "role", "create", "--implied-role", reader["id"], member["id"])
    names = [x["Name"] for x in ks.json("role", "list")]
    assert {"e2e-member", "e2e-reader"} <= set(names)
    rules = ks.json("implied", "role", "list")
    assert any(r["Prior Role Name"] == "e2e-member" and r["Implied Role Name"] == "e2e-reader" for r in rules), rules


def test_role_add_and_effective_assignments_with_names(ks, state):
    project, user, group = need(state, "project", "user", "group")
    need(state, "member")
    ks.run("role", "add", "--project", project, "--user", user, "e2e-member")
    ks.run("role", "add", "--project", project, "--group", group, "e2e-reader")
    direct = ks.json("role", "assignment", "list", "--project", project)
    assert len(direct) == 2, direct
    effective = ks.json("role", "assignment", "list", "--effective", "--names", "--project", project)
    got = sorted((a["User"], a["Role"]) for a in effective)
    # The member grant, the reader it implies, and the group's reader grant on alice: one
    # effective reader row (Keystone lists each (user, project, role) once).
    assert got == [("alice@e2e-dev", "e2e-member"), ("alice@e2e-dev", "e2e-reader")], effective
    assert all(a["Project"] == "web@e2e-dev" for a in effective), effective
    assert not any(a["Group"] for a in effective), effective


def test_catalog_services_endpoints_regions(ks, state):
    ks.run("region", "create", "E2ERegion")
    s = ks.json("service", "create", "--name", "octavia", "load-balancer")
    state["service"] = s["id"]
    for interface in ("public", "internal"):
        e = ks.json("endpoint", "create", "--region", "E2ERegion", s["id"], interface, "http://127.0.0.1:9876")
        assert e["interface"] == interface and e["region"] == "E2ERegion"
    services = ks.json("service", "list")
    assert any(x["Type"] == "load-balancer" and x["Name"] == "octavia" for x in services), services
    endpoints = ks.json("endpoint", "list", "--service", s["id"])
    assert sorted(x["Interface"] for x in endpoints) == ["internal", "public"], endpoints
    bad = ks.run("endpoint", "create", s["id"], "public", "not-a-url", expect_ok=False)
    assert "Invalid input for field 'url'" in bad.stderr, bad.describe()


def test_cleanup_removes_everything(ks, state):
    domain, project, user, group, service = need(state, "domain", "project", "user", "group", "service")
    ks.run("role", "remove", "--project", project, "--user", user, "e2e-member")
    assert len(ks.json("role", "assignment", "list", "--user", user)) == 0
    ks.run("service", "delete", service)
    # The service's endpoints went with it; the bootstrap catalog's stay.
    assert [e for e in ks.json("endpoint", "list") if e["Region"] == "E2ERegion"] == []
    ks.run("region", "delete", "E2ERegion")
    ks.run("group", "delete", group)
    ks.run("user", "delete", user)
    ks.run("project", "delete", project)
    refused = ks.run("domain", "delete", domain, expect_ok=False)
    assert "disable it first" in refused.stderr, refused.describe()
    ks.run("domain", "set", "--disable", domain)
    ks.run("domain", "delete", domain)
    gone = ks.run("domain", "show", domain, expect_ok=False)
    assert gone.returncode != 0
