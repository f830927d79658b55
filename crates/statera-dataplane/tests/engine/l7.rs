//! L7 policies on an HTTP listener, end to end: each action and each rule
//! type, as clients see them.

use crate::support::*;
use crate::support_http::*;
use statera_config::{DataPlane, L7PolicyConfig, L7RuleConfig};
use statera_model::{L7PolicyAction, ListenerProtocol};
use uuid::Uuid;

/// A rule written `[not] TYPE[:key] COMPARE value`, e.g.
/// `not HEADER:x-env EQUAL_TO canary`.
fn rule(spec: &str) -> L7RuleConfig {
    let (invert, spec) = match spec.strip_prefix("not ") {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let mut words = spec.splitn(3, ' ');
    let subject = words.next().unwrap();
    let compare_type = words.next().unwrap().parse().unwrap();
    let value = words.next().unwrap_or("").to_string();
    let (kind, key) = match subject.split_once(':') {
        Some((kind, key)) => (kind, Some(key.to_string())),
        None => (subject, None),
    };
    L7RuleConfig {
        id: Uuid::new_v4(),
        kind: kind.parse().unwrap(),
        compare_type,
        key,
        value,
        invert,
    }
}

/// What a policy does, written compactly for the table.
#[derive(Clone, Copy)]
enum Act {
    Reject,
    ToUrl(&'static str, Option<u16>),
    Prefix(&'static str, Option<u16>),
    ToAltPool,
}

fn policy(act: Act, rules: &[&str], alt_pool: Uuid) -> L7PolicyConfig {
    let mut p = L7PolicyConfig {
        id: Uuid::new_v4(),
        action: L7PolicyAction::Reject,
        redirect_pool_id: None,
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        rules: rules.iter().map(|r| rule(r)).collect(),
    };
    match act {
        Act::Reject => {}
        Act::ToUrl(url, code) => {
            p.action = L7PolicyAction::RedirectToUrl;
            p.redirect_url = Some(url.into());
            p.redirect_http_code = code;
        }
        Act::Prefix(prefix, code) => {
            p.action = L7PolicyAction::RedirectPrefix;
            p.redirect_prefix = Some(prefix.into());
            p.redirect_http_code = code;
        }
        Act::ToAltPool => {
            p.action = L7PolicyAction::RedirectToPool;
            p.redirect_pool_id = Some(alt_pool);
        }
    }
    p
}

/// What the client should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Served by this member.
    Member(&'static str),
    /// A response from the proxy, with this `Location` if any.
    Proxy(u16, Option<&'static str>),
}

use Outcome::*;

/// Request path, extra headers, outcome.
type Request = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Outcome,
);
/// What the case shows, its policies (action and rules), its requests.
type Case = (
    &'static str,
    Vec<(Act, &'static [&'static str])>,
    Vec<Request>,
);

#[tokio::test]
async fn each_action_and_rule_type_as_clients_see_them() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let web2 = HttpMember::start("web2").await;
        let default = pool(vec![member(web1.addr, 1)]);
        let alt = pool(vec![member(web2.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(default.id));
        let mut config = lb(vip(70), vec![l], vec![default, alt.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let table: Vec<Case> = vec![
            (
                "REJECT on a path prefix",
                vec![(Act::Reject, &["PATH STARTS_WITH /admin"])],
                vec![
                    ("/admin/users", &[], Proxy(403, None)),
                    ("/public", &[], Member("web1")),
                ],
            ),
            (
                "REDIRECT_TO_URL on a host name (case and port ignored)",
                vec![(
                    Act::ToUrl("https://example.com/new", Some(301)),
                    &["HOST_NAME EQUAL_TO old.example.com"],
                )],
                vec![
                    (
                        "/x",
                        &[("Host", "OLD.Example.com:8080")],
                        Proxy(301, Some("https://example.com/new")),
                    ),
                    ("/x", &[("Host", "other.example.com")], Member("web1")),
                ],
            ),
            (
                "REDIRECT_PREFIX on a file type, default code 302",
                vec![(
                    Act::Prefix("https://new.example.com", None),
                    &["FILE_TYPE EQUAL_TO php"],
                )],
                vec![
                    (
                        "/a/index.php?x=1",
                        &[],
                        Proxy(302, Some("https://new.example.com/a/index.php?x=1")),
                    ),
                    ("/a/index.html", &[], Member("web1")),
                ],
            ),
            (
                "REDIRECT_TO_POOL on a header",
                vec![(Act::ToAltPool, &["HEADER:X-Canary EQUAL_TO 1"])],
                vec![
                    ("/", &[("x-canary", "1")], Member("web2")),
                    ("/", &[("x-canary", "0")], Member("web1")),
                ],
            ),
            (
                "REDIRECT_TO_POOL on a cookie",
                vec![(Act::ToAltPool, &["COOKIE:tier EQUAL_TO gold"])],
                vec![
                    ("/", &[("Cookie", "a=b; tier=gold")], Member("web2")),
                    ("/", &[("Cookie", "tier=silver")], Member("web1")),
                    ("/", &[], Member("web1")),
                ],
            ),
            (
                "an inverted regex rule",
                vec![(Act::ToAltPool, &["not PATH REGEX ^/v1/"])],
                vec![
                    ("/v2/x", &[], Member("web2")),
                    ("/v1/x", &[], Member("web1")),
                ],
            ),
            (
                "all rules must match",
                vec![(
                    Act::Reject,
                    &["PATH STARTS_WITH /admin", "not HEADER:x-admin EQUAL_TO yes"],
                )],
                vec![
                    ("/admin", &[], Proxy(403, None)),
                    ("/admin", &[("x-admin", "yes")], Member("web1")),
                ],
            ),
            (
                "SSL rules never match on plain HTTP",
                vec![(Act::Reject, &["SSL_CONN_HAS_CERT EQUAL_TO"])],
                vec![("/", &[], Member("web1"))],
            ),
            (
                "REJECT outranks an earlier REDIRECT_TO_POOL",
                vec![
                    (Act::ToAltPool, &["PATH STARTS_WITH /"]),
                    (Act::Reject, &["PATH STARTS_WITH /private"]),
                ],
                vec![
                    ("/private", &[], Proxy(403, None)),
                    ("/p", &[], Member("web2")),
                ],
            ),
            (
                "a redirect outranks an earlier REDIRECT_TO_POOL",
                vec![
                    (Act::ToAltPool, &["PATH STARTS_WITH /"]),
                    (
                        Act::ToUrl("http://moved.test/", None),
                        &["PATH EQUAL_TO /old"],
                    ),
                ],
                vec![
                    ("/old", &[], Proxy(302, Some("http://moved.test/"))),
                    ("/new", &[], Member("web2")),
                ],
            ),
        ];

        let l_id = config.listeners[0].id;
        let mut expected_errors = 0;
        for (case, policies, requests) in table {
            config.version += 1;
            config.listeners[0].l7policies = policies
                .iter()
                .map(|(act, rules)| policy(*act, rules, alt.id))
                .collect();
            h.apply(&config).await.unwrap();
            // One keep-alive connection per case: its requests see this config.
            let mut client = HttpClient::connect(addr(vip(70), 8080)).await;
            for (path, headers, expected) in requests {
                let reply = client.get(path, headers).await.unwrap();
                let got = if reply.header("x-member").is_some() {
                    Member(if reply.body_text() == "web1" {
                        "web1"
                    } else {
                        "web2"
                    })
                } else {
                    let location = reply.header("location").map(str::to_string);
                    // Compare through the expected value's lifetime.
                    match expected {
                        Proxy(_, Some(want)) if location.as_deref() == Some(want) => {
                            Proxy(reply.status, Some(want))
                        }
                        _ if location.is_none() => Proxy(reply.status, None),
                        _ => panic!("{case}: {path}: unexpected Location {location:?}"),
                    }
                };
                assert_eq!(got, expected, "{case}: {path} {headers:?}");
                if matches!(expected, Proxy(403, _)) {
                    expected_errors += 1;
                }
            }
        }
        // Rejections are errors from the proxy; redirects are not.
        assert_eq!(
            listener_stats(&h.report(config.lb_id), l_id).request_errors,
            expected_errors
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// Path and host rules hold against the spellings that name the same
/// resource (issue 12): `//admin`, `/%61dmin`, `/./admin`, `/x/../admin`
/// and a host with a port, a trailing dot or another case are all caught,
/// `/ADMIN` is another path; the member gets the normalised target. The
/// haproxy provider's test of the same name checks the same table.
#[tokio::test]
async fn path_and_host_rules_are_not_bypassed() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let p = pool(vec![member(web.addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.l7policies = vec![
            policy(Act::Reject, &["PATH STARTS_WITH /admin"], p.id),
            policy(Act::Reject, &["HOST_NAME EQUAL_TO admin.example"], p.id),
        ];
        let config = lb(vip(200), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut client = HttpClient::connect(addr(vip(200), 8080)).await;
        // (path, host, status, the request line the member got)
        let table = [
            ("/admin", "x", 403, None),
            ("//admin", "x", 403, None),
            ("/%61dmin", "x", 403, None),
            ("/./admin", "x", 403, None),
            ("/x/../admin", "x", 403, None),
            ("/x/%2e%2e/admin/", "x", 403, None),
            // Not an escape: refused, not half-decoded into `/%61dmin`.
            ("/%%36%31dmin", "x", 400, None),
            ("/", "admin.example", 403, None),
            ("/", "admin.example:80", 403, None),
            ("/", "ADMIN.Example.:8080", 403, None),
            ("/ADMIN", "x", 200, Some("GET /ADMIN HTTP/1.1")),
            ("/public", "x", 200, Some("GET /public HTTP/1.1")),
            (
                "/a//b/./%7eme?q=%2f",
                "x",
                200,
                Some("GET /a/b/~me?q=%2F HTTP/1.1"),
            ),
            ("/", "other.example:80", 200, Some("GET / HTTP/1.1")),
        ];
        for (path, host, status, line) in table {
            let reply = client.get(path, &[("Host", host)]).await.unwrap();
            assert_eq!(reply.status, status, "{path} Host: {host}");
            if let Some(line) = line {
                let seen = web.seen().last().cloned().unwrap();
                assert_eq!(seen.request_line(), line, "{path}");
            }
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
