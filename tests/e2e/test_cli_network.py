"""The Neutron objects around a load balancer, driven by the ordinary `openstack` CLI
(python-openstackclient + openstacksdk's network proxy) against a real `statera serve`: an
external network, a tenant network, a router between them, a security group with a rule, a
port in that group, floating IPs associated and disassociated, and one association refused
because no router reaches the external network.

The steps run in file order and share one server and a `state` dict; a step whose prerequisite
step failed fails too.
"""

from __future__ import annotations

import ipaddress

import pytest

EXT_CIDR = "172.24.4.0/24"
TENANT_CIDR = "10.0.0.0/24"
CHOSEN_FIP = "172.24.4.50"


@pytest.fixture(scope="module")
def state(store_kind):
    # One scenario's state per store backend (the module runs once per backend).
    return {}


def need(state, *keys):
    missing = [k for k in keys if k not in state]
    if missing:
        pytest.fail(f"an earlier step failed, so {', '.join(missing)} is unknown", pytrace=False)
    return [state[k] for k in keys] if len(keys) > 1 else state[keys[0]]


def in_cidr(address: str, cidr: str) -> bool:
    return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)


def show(cli, kind: str, name: str) -> dict:
    return cli.json(*kind.split(), "show", name)


# ---------------------------------------------------------------------------------------------


def test_01_networks_and_subnets(cli, state):
    ext = cli.json("network", "create", "--external", "ext")
    assert ext["router:external"] is True, ext
    state["ext"] = ext["id"]
    ext_sub = cli.json("subnet", "create", "--network", "ext", "--subnet-range", EXT_CIDR, "ext-subnet")
    assert ext_sub["cidr"] == EXT_CIDR
    state["ext_subnet"] = ext_sub["id"]

    tenant = cli.json("network", "create", "tenant")
    assert tenant["router:external"] is False, tenant
    state["tenant"] = tenant["id"]
    sub = cli.json("subnet", "create", "--network", "tenant", "--subnet-range", TENANT_CIDR, "tenant-subnet")
    assert sub["gateway_ip"] == "10.0.0.1"
    state["tenant_subnet"] = sub["id"]


def test_02_router_with_gateway_and_interface(cli, state):
    ext, ext_sub, tenant_sub = need(state, "ext", "ext_subnet", "tenant_subnet")
    router = cli.json("router", "create", "r1")
    assert router["name"] == "r1"
    assert not router["external_gateway_info"], router
    state["router"] = router["id"]

    cli.run("router", "set", "--external-gateway", "ext", "r1")
    shown = show(cli, "router", "r1")
    gw = shown["external_gateway_info"]
    assert gw["network_id"] == ext, shown
    assert gw["enable_snat"] is True, shown
    [fixed] = gw["external_fixed_ips"]
    assert fixed["subnet_id"] == ext_sub
    assert in_cidr(fixed["ip_address"], EXT_CIDR), fixed
    state["gateway_ip"] = fixed["ip_address"]

    cli.run("router", "add", "subnet", "r1", "tenant-subnet")
    shown = show(cli, "router", "r1")
    interfaces = shown["interfaces_info"]
    assert [(i["subnet_id"], i["ip_address"]) for i in interfaces] == [(tenant_sub, "10.0.0.1")], shown
    ports = cli.json("port", "list", "--router", "r1", "--long")
    owners = sorted(p["Device Owner"] for p in ports)
    assert owners == ["network:router_gateway", "network:router_interface"], ports


def test_03_security_group_and_rule(cli, state):
    group = cli.json("security", "group", "create", "sg1")
    state["sg"] = group["id"]
    rules = group["rules"]
    assert len(rules) == 2, group
    assert {r["ethertype"] for r in rules} == {"IPv4", "IPv6"}
    assert {r["direction"] for r in rules} == {"egress"}

    rule = cli.json(
        "security", "group", "rule", "create",
        "--protocol", "tcp", "--dst-port", "80", "--remote-ip", "0.0.0.0/0", "sg1",
    )
    assert rule["protocol"] == "tcp"
    assert rule["port_range_min"] == 80 and rule["port_range_max"] == 80, rule
    assert rule["remote_ip_prefix"] == "0.0.0.0/0"
    assert rule["direction"] == "ingress"
    assert rule["security_group_id"] == group["id"]
    state["rule"] = rule["id"]
    listed = cli.json("security", "group", "rule", "list", "sg1")
    assert rule["id"] in [r["ID"] for r in listed], listed

    # The same rule twice: Neutron's 409.
    again = cli.run(
        "security", "group", "rule", "create",
        "--protocol", "tcp", "--dst-port", "80", "--remote-ip", "0.0.0.0/0", "sg1",
        expect_ok=False,
    )
    assert "409" in again.stderr or "already exists" in again.stderr, again.describe()


def test_04_port_in_the_group(cli, state):
    sg = need(state, "sg")
    need(state, "tenant_subnet")
    port = cli.json("port", "create", "--network", "tenant", "--security-group", "sg1", "p1")
    assert port["security_group_ids"] == [sg], port
    assert port["port_security_enabled"] is True
    [fixed] = port["fixed_ips"]
    assert in_cidr(fixed["ip_address"], TENANT_CIDR)
    state["port"] = port["id"]
    state["port_ip"] = fixed["ip_address"]

    cli.run("port", "set", "--no-security-group", "p1")
    assert show(cli, "port", "p1")["security_group_ids"] == []
    cli.run("port", "set", "--security-group", "sg1", "p1")
    assert show(cli, "port", "p1")["security_group_ids"] == [sg]

    # A group in use cannot go.
    failed = cli.run("security", "group", "delete", "sg1", expect_ok=False)
    assert "in use" in failed.stderr or "409" in failed.stderr, failed.describe()


def test_05_floating_ips(cli, state):
    ext, router, port, port_ip = need(state, "ext", "router", "port", "port_ip")
    fip = cli.json("floating", "ip", "create", "--port", "p1", "ext")
    assert fip["floating_network_id"] == ext
    assert in_cidr(fip["floating_ip_address"], EXT_CIDR), fip
    assert fip["port_id"] == port
    assert fip["fixed_ip_address"] == port_ip
    assert fip["router_id"] == router
    assert fip["status"] == "ACTIVE"
    state["fip"] = fip["id"]
    state["fip_address"] = fip["floating_ip_address"]

    chosen = cli.json("floating", "ip", "create", "--floating-ip-address", CHOSEN_FIP, "ext")
    assert chosen["floating_ip_address"] == CHOSEN_FIP
    assert chosen["port_id"] is None and chosen["status"] == "DOWN", chosen
    state["fip2"] = chosen["id"]

    # show by id and by address; list, filtered by port.
    for name in (fip["id"], fip["floating_ip_address"]):
        shown = cli.json("floating", "ip", "show", name)
        assert shown["id"] == fip["id"]
        assert shown["port_details"]["network_id"] == need(state, "tenant"), shown
    listed = cli.json("floating", "ip", "list")
    assert {r["ID"] for r in listed} >= {fip["id"], chosen["id"]}, listed
    by_port = cli.json("floating", "ip", "list", "--port", "p1")
    assert [r["ID"] for r in by_port] == [fip["id"]], by_port

    # The port's fixed IP has its floating IP: a second one is refused.
    taken = cli.run("floating", "ip", "set", "--port", "p1", CHOSEN_FIP, expect_ok=False)
    assert "409" in taken.stderr or "already has a floating IP" in taken.stderr, taken.describe()

    # While associated, the interface stays.
    kept = cli.run("router", "remove", "subnet", "r1", "tenant-subnet", expect_ok=False)
    assert "409" in kept.stderr or "floating IP" in kept.stderr, kept.describe()

    cli.run("floating", "ip", "unset", "--port", fip["id"])
    shown = cli.json("floating", "ip", "show", fip["id"])
    assert shown["port_id"] is None and shown["status"] == "DOWN", shown
    assert shown["router_id"] is None

    cli.run("floating", "ip", "set", "--port", "p1", CHOSEN_FIP)
    shown = cli.json("floating", "ip", "show", CHOSEN_FIP)
    assert shown["port_id"] == port and shown["router_id"] == router, shown
    cli.run("floating", "ip", "unset", "--port", CHOSEN_FIP)


def test_06_association_without_a_router_is_refused(cli, state):
    need(state, "ext")
    cli.json("network", "create", "lonely")
    lonely_sub = cli.json("subnet", "create", "--network", "lonely", "--subnet-range", "10.5.0.0/24", "lonely-subnet")
    lonely = cli.json("port", "create", "--network", "lonely", "lp")
    before = {r["ID"] for r in cli.json("floating", "ip", "list")}
    failed = cli.run("floating", "ip", "create", "--port", "lp", "ext", expect_ok=False)
    assert "404" in failed.stderr, failed.describe()
    assert f"is not reachable from subnet {lonely_sub['id']}" in failed.stderr, failed.describe()
    assert lonely["id"] in failed.stderr, failed.describe()
    # Nothing was left behind: no floating IP, no address held.
    assert {r["ID"] for r in cli.json("floating", "ip", "list")} == before
    cli.run("port", "delete", "lp")
    cli.run("subnet", "delete", "lonely-subnet")
    cli.run("network", "delete", "lonely")


def test_07_take_it_all_apart(cli, state):
    fip, fip2, router = need(state, "fip", "fip2", "router")
    cli.run("floating", "ip", "delete", fip, fip2)
    assert cli.json("floating", "ip", "list") == []

    cli.run("router", "remove", "subnet", "r1", "tenant-subnet")
    assert show(cli, "router", "r1")["interfaces_info"] == []
    cli.run("router", "unset", "--external-gateway", "r1")
    assert not show(cli, "router", "r1")["external_gateway_info"]
    assert cli.json("port", "list", "--router", "r1") == []
    cli.run("router", "delete", "r1")
    assert router not in [r["ID"] for r in cli.json("router", "list")]

    cli.run("port", "delete", "p1")
    cli.run("security", "group", "delete", "sg1")
    assert "sg1" not in [g["Name"] for g in cli.json("security", "group", "list")]
    cli.run("subnet", "delete", "tenant-subnet", "ext-subnet")
    cli.run("network", "delete", "tenant", "ext")
    names = [n["Name"] for n in cli.json("network", "list")]
    assert "ext" not in names and "tenant" not in names, names
