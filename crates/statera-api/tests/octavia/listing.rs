//! Collection GETs: filters, fields, sorting, pagination, tags, project scope.

use crate::support::*;
use serde_json::{Value, json};
use std::collections::HashSet;

/// Three load balancers named c, a, b (in creation order), tagged.
async fn three_lbs(h: &Harness) -> Vec<String> {
    let mut out = Vec::new();
    for (name, tags) in [
        ("c", json!(["red", "big"])),
        ("a", json!(["red"])),
        ("b", json!(["blue"])),
    ] {
        let r = h
            .post_lb(json!({"name": name, "tags": tags}))
            .await
            .expect(201);
        out.push(id(&r.body["loadbalancer"]));
    }
    h.settle().await;
    out
}

fn names(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn filters() {
    let h = Harness::new().await;
    let lbs = three_lbs(&h).await;
    let r = h.get("/v2/lbaas/loadbalancers?name=a").await.expect(200);
    assert_eq!(ids(&r.body, "loadbalancers"), vec![lbs[1].clone()]);
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers?id={}", lbs[2]))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers"), vec![lbs[2].clone()]);
    let r = h.get("/v2/lbaas/loadbalancers?name=zzz").await.expect(200);
    assert_eq!(r.body["loadbalancers"], json!([]));
    let r = h
        .get("/v2/lbaas/loadbalancers?name=a&provisioning_status=ACTIVE")
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers").len(), 1);
    let r = h
        .get("/v2/lbaas/loadbalancers?admin_state_up=True")
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers").len(), 3);
    let r = h
        .get("/v2/lbaas/loadbalancers?admin_state_up=false")
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers").len(), 0);
    let r = h
        .get(&format!(
            "/v2/lbaas/loadbalancers?vip_subnet_id={}",
            h.subnet_id
        ))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers").len(), 3);
    let r = h
        .get(&format!("/v2/lbaas/loadbalancers?project_id={PROJECT}"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers").len(), 3);
    h.get("/v2/lbaas/loadbalancers?colour=red")
        .await
        .error(400, "One or more arguments are either duplicate or invalid");

    // Parent filters on children.
    let l0 = h.listener(&lbs[0], "HTTP", 80).await;
    let l1 = h.listener(&lbs[1], "HTTP", 80).await;
    let p0 = h.pool(&lbs[0], "HTTP").await;
    let _p1 = h.pool(&lbs[1], "HTTP").await;
    let r = h
        .get(&format!("/v2/lbaas/listeners?loadbalancer_id={}", lbs[0]))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "listeners"), vec![l0.clone()]);
    let r = h
        .get(&format!("/v2/lbaas/pools?loadbalancer_id={}", lbs[0]))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "pools"), vec![p0.clone()]);
    let r = h
        .get("/v2/lbaas/listeners?protocol=HTTP&protocol_port=80")
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "listeners").len(), 2);
    h.get("/v2/lbaas/listeners?bogus=1").await.expect(400);
    h.get("/v2/lbaas/pools?bogus=1").await.expect(400);
    // Members, monitors, policies, rules filter too.
    let m = h.member(&p0, "10.0.0.1", 80).await;
    h.member(&p0, "10.0.0.2", 80).await;
    let r = h
        .get(&format!("/v2/lbaas/pools/{p0}/members?address=10.0.0.1"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "members"), vec![m]);
    h.get(&format!("/v2/lbaas/pools/{p0}/members?bogus=1"))
        .await
        .expect(400);
    let hm = h.monitor(&p0, "TCP").await;
    let r = h
        .get(&format!("/v2/lbaas/healthmonitors?pool_id={p0}"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "healthmonitors"), vec![hm]);
    let pol = h.policy(&l1).await;
    let r = h
        .get(&format!("/v2/lbaas/l7policies?listener_id={l1}"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "l7policies"), vec![pol.clone()]);
    let rule = h.rule(&pol, "/a").await;
    h.rule(&pol, "/b").await;
    let r = h
        .get(&format!("/v2/lbaas/l7policies/{pol}/rules?value=/a"))
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "rules"), vec![rule]);
}

#[tokio::test]
async fn fields() {
    let h = Harness::new().await;
    let lbs = three_lbs(&h).await;
    let r = h
        .get("/v2/lbaas/loadbalancers?fields=id&fields=name")
        .await
        .expect(200);
    for lb in r.body["loadbalancers"].as_array().unwrap() {
        assert_eq!(keys(lb), vec!["id", "name"]);
    }
    let r = h
        .get("/v2/lbaas/loadbalancers?fields=id,provisioning_status,nonsense")
        .await
        .expect(200);
    for lb in r.body["loadbalancers"].as_array().unwrap() {
        assert_eq!(keys(lb), vec!["id", "provisioning_status"]);
    }
    let r = h
        .get(&format!(
            "/v2/lbaas/loadbalancers/{}?fields=name&fields=vip_address",
            lbs[0]
        ))
        .await
        .expect(200);
    assert_eq!(keys(&r.body["loadbalancer"]), vec!["name", "vip_address"]);
    let l = h.listener(&lbs[0], "HTTP", 80).await;
    let r = h
        .get(&format!("/v2/lbaas/listeners/{l}?fields=protocol_port"))
        .await
        .expect(200);
    assert_eq!(r.body["listener"], json!({"protocol_port": 80}));
}

#[tokio::test]
async fn sorting() {
    let h = Harness::new().await;
    three_lbs(&h).await;
    let r = h.get("/v2/lbaas/loadbalancers?sort=name").await.expect(200);
    assert_eq!(names(&r.body, "loadbalancers"), ["a", "b", "c"]);
    let r = h
        .get("/v2/lbaas/loadbalancers?sort=name:desc")
        .await
        .expect(200);
    assert_eq!(names(&r.body, "loadbalancers"), ["c", "b", "a"]);
    let r = h
        .get("/v2/lbaas/loadbalancers?sort_key=name&sort_dir=desc")
        .await
        .expect(200);
    assert_eq!(names(&r.body, "loadbalancers"), ["c", "b", "a"]);
    let r = h
        .get("/v2/lbaas/loadbalancers?sort=admin_state_up:asc,name:asc")
        .await
        .expect(200);
    assert_eq!(names(&r.body, "loadbalancers"), ["a", "b", "c"]);
    h.get("/v2/lbaas/loadbalancers?sort=colour:asc")
        .await
        .error(400, "Supplied sort key 'colour' is not valid.");
    h.get("/v2/lbaas/loadbalancers?sort_key=colour")
        .await
        .error(400, "Supplied sort key 'colour' is not valid.");
    h.get("/v2/lbaas/loadbalancers?sort=name:sideways")
        .await
        .expect(400);
    h.get("/v2/lbaas/loadbalancers?sort_key=name&sort_dir=up")
        .await
        .expect(400);
}

#[tokio::test]
async fn pagination() {
    let h = Harness::new().await;
    let mut all = HashSet::new();
    for i in 0..7 {
        let r = h
            .post_lb(json!({"name": format!("lb{i}")}))
            .await
            .expect(201);
        all.insert(id(&r.body["loadbalancer"]));
    }
    h.settle().await;
    // First page: full, so a next link and no previous link.
    let r = h
        .get("/v2/lbaas/loadbalancers?limit=3&sort=name:asc")
        .await
        .expect(200);
    assert_eq!(names(&r.body, "loadbalancers"), ["lb0", "lb1", "lb2"]);
    let links = r.body["loadbalancers_links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["rel"], "next");
    let href = links[0]["href"].as_str().unwrap();
    assert!(
        href.starts_with("http://statera.test:9876/v2/lbaas/loadbalancers?"),
        "{href}"
    );
    assert!(href.contains("limit=3"), "{href}");
    assert!(href.contains("sort=name"), "{href}");
    let ids0 = ids(&r.body, "loadbalancers");
    assert!(href.contains(&format!("marker={}", ids0[2])), "{href}");

    // Follow next links to the end: every object exactly once.
    let mut seen = Vec::new();
    let mut url = "/v2/lbaas/loadbalancers?limit=2".to_string();
    let mut pages = 0;
    loop {
        let r = h.get(&url).await.expect(200);
        let page = ids(&r.body, "loadbalancers");
        pages += 1;
        assert!(pages < 10, "next links never end");
        seen.extend(page.clone());
        let links = r.body["loadbalancers_links"].as_array().unwrap().clone();
        if pages > 1 {
            assert!(
                links.iter().any(|l| l["rel"] == "previous"),
                "a marker was given: {links:?}"
            );
        }
        let next = links.iter().find(|l| l["rel"] == "next");
        if page.len() < 2 {
            assert!(next.is_none(), "a short page has no next link: {links:?}");
        }
        match next {
            Some(n) => {
                let href = n["href"].as_str().unwrap();
                url = href
                    .strip_prefix("http://statera.test:9876")
                    .unwrap()
                    .to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), all);

    // page_reverse from a marker: the page before it.
    let r = h
        .get(&format!(
            "/v2/lbaas/loadbalancers?limit=2&sort=name&marker={}&page_reverse=True",
            ids0[2]
        ))
        .await
        .expect(200);
    assert_eq!(names(&r.body, "loadbalancers"), ["lb0", "lb1"]);
    // Exact fit: a page of exactly limit items still gets a next link (the
    // page is full), and the following page is empty.
    let r = h.get("/v2/lbaas/loadbalancers?limit=7").await.expect(200);
    let links = r.body["loadbalancers_links"].as_array().unwrap();
    assert!(links.iter().any(|l| l["rel"] == "next"));
    let r = h.get("/v2/lbaas/loadbalancers?limit=8").await.expect(200);
    assert_eq!(r.body["loadbalancers_links"], json!([]));
    // limit < 1 or "infinite": everything.
    for l in ["0", "-1", "infinite"] {
        let r = h
            .get(&format!("/v2/lbaas/loadbalancers?limit={l}"))
            .await
            .expect(200);
        assert_eq!(ids(&r.body, "loadbalancers").len(), 7, "limit={l}");
    }
    h.get("/v2/lbaas/loadbalancers?limit=abc")
        .await
        .error(400, "Supplied pagination limit");
    h.get(&format!(
        "/v2/lbaas/loadbalancers?marker={}",
        uuid::Uuid::new_v4()
    ))
    .await
    .error(400, "Supplied pagination marker");
}

#[tokio::test]
async fn tag_filters() {
    let h = Harness::new().await;
    three_lbs(&h).await; // c: red,big  a: red  b: blue
    let h = &h;
    let q = |query: &'static str| async move {
        let r = h
            .get(&format!("/v2/lbaas/loadbalancers?{query}&sort=name"))
            .await
            .expect(200);
        names(&r.body, "loadbalancers")
    };
    assert_eq!(q("tags=red").await, ["a", "c"]);
    assert_eq!(q("tags=red,big").await, ["c"]);
    assert_eq!(q("tags=red&tags=big").await, ["c"]);
    assert_eq!(q("tags-any=big,blue").await, ["b", "c"]);
    assert_eq!(q("not-tags=red,big").await, ["a", "b"]);
    assert_eq!(q("not-tags-any=big,blue").await, ["a"]);
    assert_eq!(q("tags=red&not-tags=big").await, ["a"]);
    assert_eq!(q("tags-any=red&name=c").await, ["c"]);
}

#[tokio::test]
async fn project_scope() {
    let h = Harness::new().await;
    let mine = h.lb().await;
    // A load balancer of another project (created by an admin on its behalf).
    let r = h
        .post_lb(json!({"project_id": OTHER_PROJECT}))
        .await
        .expect(201);
    assert_eq!(r.body["loadbalancer"]["tenant_id"], OTHER_PROJECT);
    let theirs = id(&r.body["loadbalancer"]);
    h.settle().await;
    // The admin sees both; a member sees only their project.
    let r = h.get("/v2/lbaas/loadbalancers").await.expect(200);
    assert_eq!(ids(&r.body, "loadbalancers").len(), 2);
    let r = h
        .as_member(PROJECT, "GET", "/v2/lbaas/loadbalancers", None)
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers"), vec![mine.clone()]);
    let r = h
        .as_member(OTHER_PROJECT, "GET", "/v2/lbaas/loadbalancers", None)
        .await
        .expect(200);
    assert_eq!(ids(&r.body, "loadbalancers"), vec![theirs.clone()]);
    h.as_member(
        PROJECT,
        "GET",
        &format!("/v2/lbaas/loadbalancers?project_id={OTHER_PROJECT}"),
        None,
    )
    .await
    .error(403, "Policy does not allow this request to be performed.");
    // Children lists are scoped too.
    h.listener(&theirs, "HTTP", 80).await;
    let r = h
        .as_member(PROJECT, "GET", "/v2/lbaas/listeners", None)
        .await
        .expect(200);
    assert_eq!(r.body["listeners"], json!([]));
}
