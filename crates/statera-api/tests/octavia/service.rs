//! The service layer (`statera_service`) against a real store: the tree walk
//! sees every object under a load balancer by kind, the delete marking and
//! the controller's removal go through it, locking refuses a busy load
//! balancer with a retry-safe conflict, quotas count per project, and
//! `authorize` asks the deployment's policy with the caller's roles.

use crate::support::*;
use serde_json::json;
use statera_model::identity::Caller;
use statera_model::{
    HealthMonitorType, L7PolicyAction, L7RuleCompareType, L7RuleType, LbAlgorithm, Listener,
    ListenerProtocol, LoadBalancer, PoolProtocol, ProvisioningStatus, SessionPersistenceType,
};
use statera_policy::Enforcer;
use statera_service::octavia::Deployment;
use statera_service::octavia::healthmonitors as hm;
use statera_service::octavia::l7policies as l7p;
use statera_service::octavia::l7rules as l7r;
use statera_service::octavia::listeners as ls;
use statera_service::octavia::loadbalancers as lbs;
use statera_service::octavia::members as mem;
use statera_service::octavia::pools as pl;
use statera_service::octavia::quotas as qt;
use statera_service::{
    Context, LbTree, Opt, QuotaDefaults, QuotaKind, ServiceError, StoreRead, check_quota, lock_lb,
    mark_tree_deleted,
};
use std::sync::Arc;
use uuid::Uuid;

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

/// lb → listener (policy → 2 rules) and its default pool (2 members, a
/// monitor), plus a second listener and a pool no listener uses.
async fn full_tree(h: &Harness) -> Uuid {
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let p = h.default_pool(&l, "HTTP").await;
    h.member(&p, "10.0.0.1", 8080).await;
    h.member(&p, "10.0.0.2", 8080).await;
    h.monitor(&p, "HTTP").await;
    let pol = h.policy(&l).await;
    h.rule(&pol, "/a").await;
    h.rule(&pol, "/b").await;
    h.listener(&lb, "TCP", 81).await;
    h.pool(&lb, "TCP").await;
    uuid(&lb)
}

#[tokio::test]
async fn the_tree_walk_sees_every_object_under_a_load_balancer_by_kind() {
    let h = Harness::new().await;
    let lb = full_tree(&h).await;
    let other = uuid(&h.lb().await);
    let s = h.store.snapshot();
    let tree = LbTree::of(&*s, lb);
    assert_eq!(tree.lb.as_ref().map(|l| l.id), Some(lb));
    assert!(tree.has_children());
    assert_eq!(tree.listeners.len(), 2);
    assert_eq!(tree.pools.len(), 2);
    let policies: usize = tree.listeners.iter().map(|l| l.policies.len()).sum();
    let rules: usize = tree
        .listeners
        .iter()
        .flat_map(|l| &l.policies)
        .map(|p| p.rules.len())
        .sum();
    let members: usize = tree.pools.iter().map(|p| p.members.len()).sum();
    let monitors: usize = tree.pools.iter().map(|p| p.monitors.len()).sum();
    assert_eq!((policies, rules, members, monitors), (1, 2, 2, 1));
    // The controller made one amphora when it first served the LB.
    assert_eq!(tree.amphorae.len(), 1);
    // Another load balancer's tree is its own and empty.
    let empty = LbTree::of(&*s, other);
    assert!(!empty.has_children());
    // The narrow interface agrees with the tables.
    assert_eq!(StoreRead::children::<Listener>(&*s, lb).len(), 2);
    assert_eq!(s.count_by_project::<LoadBalancer>(PROJECT), 2);
    assert_eq!(s.count_by_project::<LoadBalancer>(OTHER_PROJECT), 0);
}

#[tokio::test]
async fn delete_marking_and_the_controllers_removal_cover_the_whole_tree() {
    let h = Harness::new().await;
    let lb = full_tree(&h).await;
    h.store
        .write(|txn| {
            mark_tree_deleted(txn, lb)?;
            txn.enqueue(lb, &[lb])?;
            Ok::<_, ServiceError>(())
        })
        .await
        .unwrap();
    let s = h.store.snapshot();
    let pending_delete = |st: ProvisioningStatus| st == ProvisioningStatus::PendingDelete;
    assert!(pending_delete(
        s.loadbalancers.get(&lb).unwrap().provisioning_status
    ));
    let statuses: Vec<ProvisioningStatus> = (s.listeners.iter().map(|o| o.provisioning_status))
        .chain(s.pools.iter().map(|o| o.provisioning_status))
        .chain(s.members.iter().map(|o| o.provisioning_status))
        .chain(s.healthmonitors.iter().map(|o| o.provisioning_status))
        .chain(s.l7policies.iter().map(|o| o.provisioning_status))
        .chain(s.l7rules.iter().map(|o| o.provisioning_status))
        .collect();
    assert_eq!(statuses.len(), 10);
    assert!(statuses.into_iter().all(pending_delete));
    assert!(s.loadbalancers.get(&lb).unwrap().updated_at.is_some());
    h.settle().await;
    let s = h.store.snapshot();
    assert!(s.loadbalancers.get(&lb).is_none());
    assert_eq!(
        (
            s.listeners.len(),
            s.pools.len(),
            s.members.len(),
            s.healthmonitors.len(),
            s.l7policies.len(),
            s.l7rules.len(),
            s.amphorae.children(lb).count(),
        ),
        (0, 0, 0, 0, 0, 0, 0)
    );
}

#[tokio::test]
async fn locking_a_busy_load_balancer_is_a_retry_safe_conflict() {
    let h = Harness::new().await;
    let lb = uuid(&h.lb().await);
    h.store.write(|txn| lock_lb(txn, lb, &[lb])).await.unwrap();
    let err = h
        .store
        .write(|txn| lock_lb(txn, lb, &[lb]))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Busy(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("Load Balancer {lb} is immutable and cannot be updated.")
    );
    assert!(err.retry_safe());
    // In ERROR the same 409 is no promise: nothing will clear it by itself.
    h.store
        .write(|txn| {
            let mut l = (**txn.state().loadbalancers.get(&lb).unwrap()).clone();
            l.provisioning_status = ProvisioningStatus::Error;
            txn.put(l)
        })
        .await
        .unwrap();
    let err = h
        .store
        .write(|txn| lock_lb(txn, lb, &[lb]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Load Balancer {lb} is immutable and cannot be updated.")
    );
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    assert!(!err.retry_safe());
    let missing = Uuid::new_v4();
    let err = h
        .store
        .write(|txn| lock_lb(txn, missing, &[]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Load Balancer {missing} not found.")
    );
    assert!(!err.retry_safe());
}

#[tokio::test]
async fn quotas_count_per_project() {
    let h = Harness::new().await;
    h.lb().await;
    let s = h.store.snapshot();
    let one = QuotaDefaults {
        loadbalancer: 1,
        ..QuotaDefaults::default()
    };
    let err = check_quota(&one, &*s, PROJECT, QuotaKind::LoadBalancer, 1).unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)));
    assert_eq!(
        err.to_string(),
        "Quota has been met for resources: Load Balancer"
    );
    check_quota(&one, &*s, OTHER_PROJECT, QuotaKind::LoadBalancer, 1).unwrap();
    check_quota(
        &QuotaDefaults::default(),
        &*s,
        PROJECT,
        QuotaKind::LoadBalancer,
        5,
    )
    .unwrap();
}

#[test]
fn authorize_asks_the_policy_with_the_callers_roles_and_project() {
    let policy = Arc::new(Enforcer::defaults());
    let member = |project: &str, roles: &[&str]| {
        Context::new(
            Caller {
                project_id: Some(project.to_string()),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                ..Caller::default()
            },
            policy.clone(),
        )
    };
    let owner = member(PROJECT, &["member"]);
    owner
        .authorize("os_load-balancer_api:loadbalancer:get_one", PROJECT)
        .unwrap();
    let err = owner
        .authorize("os_load-balancer_api:loadbalancer:get_one", OTHER_PROJECT)
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)));
    assert_eq!(
        err.to_string(),
        "Policy does not allow this request to be performed."
    );
    // A reader may look but not change.
    let reader = member(PROJECT, &["reader"]);
    assert!(reader.allowed("os_load-balancer_api:loadbalancer:get_one", PROJECT));
    assert!(!reader.allowed("os_load-balancer_api:loadbalancer:post", PROJECT));
    // No roles at all: nothing.
    let nobody = member(PROJECT, &[]);
    assert!(!nobody.allowed("os_load-balancer_api:loadbalancer:get_one", PROJECT));
    assert!(!nobody.is_admin());
    assert!(member(PROJECT, &["admin"]).is_admin());
}

/// A deployment of defaults where `refused` monitor types get 501.
struct Lab {
    quotas: QuotaDefaults,
    refused: Vec<HealthMonitorType>,
    own: Vec<std::net::SocketAddr>,
}

impl Deployment for Lab {
    fn quota_defaults(&self) -> &QuotaDefaults {
        &self.quotas
    }

    fn unsupported_monitor_types(&self, _provider: &str) -> &[HealthMonitorType] {
        &self.refused
    }

    fn reserved_ips(&self) -> &[std::net::IpAddr] {
        &[]
    }

    fn own_sockets(&self) -> &[std::net::SocketAddr] {
        &self.own
    }
}

fn caller(project: &str, roles: &[&str]) -> Context {
    Context::new(
        Caller {
            project_id: Some(project.to_string()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Caller::default()
        },
        Arc::new(Enforcer::defaults()),
    )
}

fn monitor_fields(delay: i64) -> hm::MonitorFields {
    hm::MonitorFields {
        name: Opt::Set("probe".into()),
        admin_state_up: Opt::Absent,
        delay: Opt::Set(delay),
        timeout: Opt::Set(3),
        max_retries: Opt::Set(2),
        max_retries_down: Opt::Absent,
        http_method: Opt::Absent,
        url_path: Opt::Set("/health".into()),
        expected_codes: Opt::Absent,
        http_version: Opt::Absent,
        domain_name: Opt::Absent,
        tags: Opt::Absent,
    }
}

#[tokio::test]
async fn health_monitor_operations_take_a_context_and_typed_input() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let pool = uuid(&h.pool(&lb, "HTTP").await);
    let owner = caller(PROJECT, &["member"]);
    let stranger = caller(OTHER_PROJECT, &["member"]);
    let lab = Lab {
        quotas: QuotaDefaults::default(),
        refused: vec![HealthMonitorType::Tcp],
        own: vec![],
    };

    let create = async |ctx: &Context, kind: HealthMonitorType, fields: hm::MonitorFields| {
        h.store
            .write(|txn| hm::create(ctx, txn, &lab, pool, kind, fields))
            .await
    };

    // Another project's member may not add a monitor to this pool; the
    // provider's missing feature is 501; nothing was written by either.
    let err = create(&stranger, HealthMonitorType::Http, monitor_fields(5))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    let tcp = hm::MonitorFields {
        url_path: Opt::Absent,
        ..monitor_fields(5)
    };
    let err = create(&owner, HealthMonitorType::Tcp, tcp)
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::NotImplemented(_)), "{err:?}");
    assert!(h.store.snapshot().healthmonitors.is_empty());

    // The owner's create: PENDING_CREATE, its pool and load balancer locked.
    let created = create(&owner, HealthMonitorType::Http, monitor_fields(5))
        .await
        .unwrap();
    assert_eq!(
        created.provisioning_status,
        ProvisioningStatus::PendingCreate
    );
    assert_eq!(created.url_path.as_deref(), Some("/health"));
    let s = h.store.snapshot();
    assert_eq!(
        s.loadbalancers.get(&uuid(&lb)).unwrap().provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    // A second change while locked is a retry-safe conflict.
    let err = h
        .store
        .write(|txn| hm::update(&owner, txn, created.id, monitor_fields(7)))
        .await
        .unwrap_err();
    assert!(err.retry_safe(), "{err:?}");
    h.settle().await;

    // show and list see it for the owner only.
    let s = h.store.snapshot();
    assert_eq!(hm::show(&owner, &*s, created.id).unwrap().id, created.id);
    assert!(matches!(
        hm::show(&stranger, &*s, created.id),
        Err(ServiceError::Forbidden(_))
    ));
    assert_eq!(hm::list(&owner, &*s, None).unwrap().len(), 1);
    assert!(hm::list(&stranger, &*s, None).unwrap().is_empty());
    assert!(matches!(
        hm::list(&stranger, &*s, Some(PROJECT)),
        Err(ServiceError::Forbidden(_))
    ));

    // update validates the whole monitor on the model.
    let mut bad = monitor_fields(5);
    bad.url_path = Opt::Set("no-slash".into());
    let err = h
        .store
        .write(|txn| hm::update(&owner, txn, created.id, bad))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid input for field/attribute url_path. Value: 'no-slash'. Value should be a valid URL path starting with /"
    );
    let updated = h
        .store
        .write(|txn| hm::update(&owner, txn, created.id, monitor_fields(9)))
        .await
        .unwrap();
    assert_eq!(
        (updated.delay, updated.provisioning_status),
        (9, ProvisioningStatus::PendingUpdate)
    );
    h.settle().await;

    // delete: PENDING_DELETE, then the controller removes it.
    h.store
        .write(|txn| hm::delete(&owner, txn, created.id))
        .await
        .unwrap();
    assert_eq!(
        h.store
            .snapshot()
            .healthmonitors
            .get(&created.id)
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingDelete
    );
    h.settle().await;
    assert!(h.store.snapshot().healthmonitors.is_empty());
    let missing = Uuid::new_v4();
    let err = h
        .store
        .write(|txn| hm::delete(&owner, txn, missing))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Health Monitor {missing} not found.")
    );
}

fn rule_fields(compare: L7RuleCompareType, value: &str) -> l7r::RuleFields {
    l7r::RuleFields {
        kind: Opt::Set(L7RuleType::Path),
        compare_type: Opt::Set(compare),
        key: Opt::Absent,
        value: Opt::Set(value.into()),
        invert: Opt::Absent,
        admin_state_up: Opt::Absent,
        tags: Opt::Absent,
    }
}

#[tokio::test]
async fn l7_rule_operations_take_a_context_and_typed_input() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = h.listener(&lb, "HTTP", 80).await;
    let policy = uuid(&h.policy(&l).await);
    let other_policy = uuid(&h.policy(&l).await);
    let owner = caller(PROJECT, &["member"]);
    let stranger = caller(OTHER_PROJECT, &["member"]);
    let quotas = QuotaDefaults::default();

    let err = h
        .store
        .write(|txn| {
            l7r::create(
                &owner,
                txn,
                &quotas,
                policy,
                rule_fields(L7RuleCompareType::Regex, "("),
            )
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("Error parsing L7Rule: Invalid L7 Rule: Invalid regex:"),
        "{err}"
    );
    let rule = h
        .store
        .write(|txn| {
            l7r::create(
                &owner,
                txn,
                &quotas,
                policy,
                rule_fields(L7RuleCompareType::StartsWith, "/api"),
            )
        })
        .await
        .unwrap();
    assert_eq!(rule.provisioning_status, ProvisioningStatus::PendingCreate);
    let s = h.store.snapshot();
    assert_eq!(
        s.l7policies.get(&policy).unwrap().provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    h.settle().await;

    let s = h.store.snapshot();
    let id = rule.id.to_string();
    assert_eq!(l7r::show(&owner, &*s, policy, &id).unwrap().id, rule.id);
    assert_eq!(l7r::list(&owner, &*s, policy).unwrap().len(), 1);
    assert!(matches!(
        l7r::show(&stranger, &*s, policy, &id),
        Err(ServiceError::Forbidden(_))
    ));
    // A rule asked for under another policy, or by a name that is no UUID,
    // is not found.
    let err = l7r::show(&owner, &*s, other_policy, &id).unwrap_err();
    assert_eq!(err.to_string(), format!("L7 Rule {id} not found."));
    let err = l7r::show(&owner, &*s, policy, "nope").unwrap_err();
    assert_eq!(err.to_string(), "L7 Rule nope not found.");

    h.store
        .write(|txn| l7r::delete(&owner, txn, policy, &id))
        .await
        .unwrap();
    assert_eq!(
        h.store
            .snapshot()
            .l7rules
            .get(&rule.id)
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingDelete
    );
    h.settle().await;
    assert!(h.store.snapshot().l7rules.is_empty());
}

/// Flavor profiles and availability zone profiles are one implementation
/// (`octavia/profiles.rs`) over two kinds: the same answers, in each kind's
/// own names.
#[tokio::test]
async fn both_kinds_of_profile_answer_alike() {
    let h = Harness::new().await;
    for (path, envelope, data, resource, users, user) in [
        (
            "/v2/lbaas/flavorprofiles",
            "flavorprofile",
            "flavor_data",
            "Flavor profile",
            "/v2/lbaas/flavors",
            json!({"flavor": {"name": "f1", "flavor_profile_id": "ID"}}),
        ),
        (
            "/v2/lbaas/availabilityzoneprofiles",
            "availability_zone_profile",
            "availability_zone_data",
            "Availability Zone Profile",
            "/v2/lbaas/availabilityzones",
            json!({"availability_zone": {"name": "az1", "availability_zone_profile_id": "ID"}}),
        ),
    ] {
        let r = h
            .post(
                path,
                json!({ envelope: {"name": "p", "provider_name": "native", data: "{}"} }),
            )
            .await
            .expect(201);
        let id = r.body[envelope]["id"].as_str().unwrap().to_string();
        assert_eq!(r.body[envelope][data], "{}");
        h.put(&format!("{path}/{id}"), json!({ envelope: {"name": null} }))
            .await
            .error(400, "None is not a valid option for name");
        h.put(&format!("{path}/{id}"), json!({ envelope: {"name": "q"} }))
            .await
            .expect(200);
        let body = serde_json::to_string(&user).unwrap().replace("ID", &id);
        h.post(users, serde_json::from_str(&body).unwrap())
            .await
            .expect(201);
        let in_use = format!("{resource} {id} is in use and cannot be modified.");
        h.put(&format!("{path}/{id}"), json!({ envelope: {data: "{}"} }))
            .await
            .error(409, &in_use);
        h.delete(&format!("{path}/{id}")).await.error(409, &in_use);
        let r = h.get(path).await.expect(200);
        let plural = r
            .body
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>();
        assert!(plural.iter().any(|k| k.ends_with("profiles")), "{plural:?}");
        let missing = Uuid::new_v4();
        h.delete(&format!("{path}/{missing}"))
            .await
            .error(404, &format!("{resource} {missing} not found."));
    }
}

fn policy_fields(position: Option<i64>) -> l7p::PolicyFields {
    l7p::PolicyFields {
        name: Opt::Absent,
        description: Opt::Absent,
        admin_state_up: Opt::Absent,
        action: Opt::Absent,
        redirect_pool_id: Opt::Absent,
        redirect_url: Opt::Absent,
        redirect_prefix: Opt::Absent,
        redirect_http_code: Opt::Absent,
        position: position.map_or(Opt::Absent, Opt::Set),
        tags: Opt::Absent,
    }
}

#[tokio::test]
async fn l7_policy_operations_place_policies_and_cascade_to_rules() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let l = uuid(&h.listener(&lb, "HTTP", 80).await);
    let first = uuid(&h.policy(&l.to_string()).await);
    let owner = caller(PROJECT, &["member"]);
    let quotas = QuotaDefaults::default();

    // A new policy with two rules, placed first: the old one moves to 2.
    let id = h
        .store
        .write(|txn| {
            l7p::create(
                &owner,
                txn,
                &quotas,
                l,
                L7PolicyAction::Reject,
                policy_fields(Some(1)),
                vec![
                    rule_fields(L7RuleCompareType::StartsWith, "/a"),
                    rule_fields(L7RuleCompareType::StartsWith, "/b"),
                ],
            )
        })
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert_eq!(s.l7policies.get(&id).unwrap().position, 1);
    assert_eq!(s.l7policies.get(&first).unwrap().position, 2);
    assert_eq!(s.l7rules.children(id).count(), 2);
    assert_eq!(l7p::list(&owner, &*s, None).unwrap().len(), 2);
    assert!(matches!(
        l7p::show(&caller(OTHER_PROJECT, &["member"]), &*s, id),
        Err(ServiceError::Forbidden(_))
    ));
    h.settle().await;

    // Deleting it marks its rules too; the controller removes all three and
    // renumbers the survivor.
    h.store
        .write(|txn| l7p::delete(&owner, txn, id))
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert!(
        s.l7rules
            .children(id)
            .all(|r| r.provisioning_status == ProvisioningStatus::PendingDelete)
    );
    h.settle().await;
    let s = h.store.snapshot();
    assert!(s.l7policies.get(&id).is_none());
    assert!(s.l7rules.is_empty());
    assert_eq!(s.l7policies.get(&first).unwrap().position, 1);
}

fn new_member(address: &str, port: u16) -> mem::NewMember {
    mem::NewMember {
        address: address.parse().unwrap(),
        address_as_sent: None,
        protocol_port: port,
        subnet_id: None,
        fields: mem::MemberFields {
            name: Opt::Absent,
            admin_state_up: Opt::Absent,
            weight: Opt::Absent,
            backup: Opt::Absent,
            monitor_address: Opt::Absent,
            monitor_port: Opt::Absent,
            tags: Opt::Absent,
        },
    }
}

#[tokio::test]
async fn member_operations_check_targets_and_batch_against_the_state_before() {
    let h = Harness::new().await;
    let lb = h.lb().await;
    let pool = uuid(&h.pool(&lb, "TCP").await);
    h.member(&pool.to_string(), "10.0.0.1", 80).await;
    h.member(&pool.to_string(), "10.0.0.2", 80).await;
    let owner = caller(PROJECT, &["member"]);
    let lab = Lab {
        quotas: QuotaDefaults {
            member: 2,
            ..QuotaDefaults::default()
        },
        refused: vec![],
        own: vec![API_SOCKET.parse().unwrap()],
    };

    // Never at the service's own socket.
    let err = h
        .store
        .write(|txn| mem::create(&owner, txn, &lab, pool, new_member("127.0.0.1", 9876)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("the load-balancing service itself listens there"),
        "{err}"
    );
    // At its quota of 2: one more is refused...
    let err = h
        .store
        .write(|txn| mem::create(&owner, txn, &lab, pool, new_member("10.0.0.3", 80)))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    // ...and a batch is counted against the state before it: keeping .1,
    // dropping .2, adding .3 and .4 under a quota of 3 is 2 + 2 - 1 = 3
    // (counting its own rows, 4 + 1, would refuse it).
    let three = Lab {
        quotas: QuotaDefaults {
            member: 3,
            ..QuotaDefaults::default()
        },
        refused: vec![],
        own: vec![],
    };
    h.store
        .write(|txn| {
            mem::batch_update(
                &owner,
                txn,
                &three,
                pool,
                false,
                vec![
                    new_member("10.0.0.1", 80),
                    new_member("10.0.0.3", 80),
                    new_member("10.0.0.4", 80),
                ],
            )
        })
        .await
        .unwrap();
    let s = h.store.snapshot();
    let statuses: Vec<(String, ProvisioningStatus)> = mem::list(&owner, &*s, pool)
        .unwrap()
        .iter()
        .map(|m| (m.address.to_string(), m.provisioning_status))
        .collect();
    assert_eq!(statuses.len(), 4, "{statuses:?}");
    for (address, status) in statuses {
        let expected = match address.as_str() {
            "10.0.0.1" => ProvisioningStatus::PendingUpdate,
            "10.0.0.2" => ProvisioningStatus::PendingDelete,
            _ => ProvisioningStatus::PendingCreate,
        };
        assert_eq!(status, expected, "{address}");
    }
    h.settle().await;
    assert_eq!(h.store.snapshot().members.len(), 3);
    let err = mem::show(&owner, &*h.store.snapshot(), pool, "x").unwrap_err();
    assert_eq!(err.to_string(), "Member x not found.");
}

#[tokio::test]
async fn quota_operations_authorize_per_project_and_fill_defaults() {
    let h = Harness::new().await;
    let admin = caller(PROJECT, &["admin"]);
    let owner = caller(PROJECT, &["member"]);
    let d = QuotaDefaults {
        pool: 7,
        ..QuotaDefaults::default()
    };
    let fields = |lb: Opt<i64>| qt::QuotaFields {
        loadbalancer: lb,
        listener: Opt::Absent,
        member: Opt::Absent,
        pool: Opt::Absent,
        healthmonitor: Opt::Absent,
        l7policy: Opt::Absent,
        l7rule: Opt::Absent,
    };
    // A member may not set its own quota; an admin may set another's.
    let err = h
        .store
        .write(|txn| qt::update(&owner, txn, PROJECT, fields(Opt::Set(3))))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    let row = h
        .store
        .write(|txn| qt::update(&admin, txn, OTHER_PROJECT, fields(Opt::Set(3))))
        .await
        .unwrap();
    assert_eq!((row.loadbalancer, row.pool), (Some(3), None));
    let s = h.store.snapshot();
    let eff = qt::show(&admin, &*s, &d, OTHER_PROJECT).unwrap();
    assert_eq!((eff.loadbalancer, eff.pool), (Some(3), Some(7)));
    // The owner reads its own (defaults only), not another's, and lists
    // only its own rows (none).
    assert_eq!(qt::show(&owner, &*s, &d, PROJECT).unwrap().pool, Some(7));
    assert!(matches!(
        qt::show(&owner, &*s, &d, OTHER_PROJECT),
        Err(ServiceError::Forbidden(_))
    ));
    assert!(qt::list(&owner, &*s, None).unwrap().is_empty());
    assert_eq!(qt::list(&admin, &*s, None).unwrap().len(), 1);
    // Null resets a limit; delete drops the row (and is idempotent).
    let row = h
        .store
        .write(|txn| qt::update(&admin, txn, OTHER_PROJECT, fields(Opt::Null)))
        .await
        .unwrap();
    assert_eq!(row.loadbalancer, None);
    for _ in 0..2 {
        h.store
            .write(|txn| qt::delete(&admin, txn, OTHER_PROJECT))
            .await
            .unwrap();
    }
    assert!(h.store.snapshot().quotas.is_empty());
}

fn pool_fields(
    persistence: Option<(Option<SessionPersistenceType>, Option<&str>)>,
) -> pl::PoolFields {
    pl::PoolFields {
        name: Opt::Set("web".into()),
        description: Opt::Absent,
        admin_state_up: Opt::Absent,
        lb_algorithm: Opt::Set(LbAlgorithm::LeastConnections),
        session_persistence: persistence.map_or(Opt::Absent, |(kind, cookie)| {
            Opt::Set(pl::SessionPersistenceFields {
                kind: Ok(kind),
                attributes: Ok(pl::SessionPersistenceAttributes {
                    cookie_name: cookie.map(str::to_string),
                    persistence_timeout: None,
                    persistence_granularity: None,
                }),
            })
        }),
        tls_enabled: Opt::Absent,
        tls_container_ref: Opt::Absent,
        ca_tls_container_ref: Opt::Absent,
        crl_container_ref: Opt::Absent,
        tls_ciphers: Opt::Absent,
        tls_versions: Opt::Absent,
        alpn_protocols: Opt::Absent,
        tags: Opt::Absent,
    }
}

#[tokio::test]
async fn pool_operations_authorize_validate_and_cascade_to_listeners_and_members() {
    let h = Harness::new().await;
    let lb = uuid(&h.lb().await);
    let l = uuid(&h.listener(&lb.to_string(), "HTTP", 80).await);
    let owner = caller(PROJECT, &["member"]);
    let stranger = caller(OTHER_PROJECT, &["member"]);
    let lab = Lab {
        quotas: QuotaDefaults::default(),
        refused: vec![],
        own: vec![],
    };
    let on_listener = |fields: pl::PoolFields| pl::NewPool {
        loadbalancer_id: None,
        listener_id: Some(l),
        protocol: PoolProtocol::Http,
        fields,
    };

    // Another project's member may not add a pool to this listener (asked
    // before anything else is said about the listener).
    let err = h
        .store
        .write(|txn| pl::create(&stranger, txn, &lab, on_listener(pool_fields(None))))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    // The whole pool is validated: APP_COOKIE needs a cookie name; a bad
    // cookie name is refused as the field.
    let err = h
        .store
        .write(|txn| {
            let fields = pool_fields(Some((Some(SessionPersistenceType::AppCookie), None)));
            pl::create(&owner, txn, &lab, on_listener(fields))
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Validation failure: Field `cookie_name` must be specified when using the `APP_COOKIE` session persistence type."
    );
    let err = h
        .store
        .write(|txn| {
            let fields = pool_fields(Some((Some(SessionPersistenceType::AppCookie), Some("a b"))));
            pl::create(&owner, txn, &lab, on_listener(fields))
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid input for field/attribute cookie_name. Value: 'a b'. Invalid cookie name"
    );
    // A persistence without a type on create is the missing field.
    let err = h
        .store
        .write(|txn| {
            pl::create(
                &owner,
                txn,
                &lab,
                on_listener(pool_fields(Some((None, None)))),
            )
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid input for field/attribute type. Value: 'None'. Mandatory field missing."
    );
    assert!(h.store.snapshot().pools.is_empty());

    // Created on the listener: its default pool, the listener and the load
    // balancer locked; a second change meanwhile is a retry-safe conflict.
    let fields = pool_fields(Some((Some(SessionPersistenceType::SourceIp), None)));
    let p = h
        .store
        .write(|txn| pl::create(&owner, txn, &lab, on_listener(fields)))
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert_eq!(p.provisioning_status, ProvisioningStatus::PendingCreate);
    assert_eq!(p.lb_algorithm, LbAlgorithm::LeastConnections);
    let listener = s.listeners.get(&l).unwrap();
    assert_eq!(listener.default_pool_id, Some(p.id));
    assert_eq!(
        listener.provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    assert_eq!(
        s.loadbalancers.get(&lb).unwrap().provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    let err = h
        .store
        .write(|txn| pl::update(&owner, txn, &lab, p.id, pool_fields(None)))
        .await
        .unwrap_err();
    assert!(err.retry_safe(), "{err:?}");
    h.settle().await;
    // A listener has one default pool.
    let err = h
        .store
        .write(|txn| pl::create(&owner, txn, &lab, on_listener(pool_fields(None))))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    // A clash: sending it again changes nothing.
    assert!(!err.retry_safe(), "{err:?}");

    // An update without a persistence type keeps the pool's.
    let updated = h
        .store
        .write(|txn| pl::update(&owner, txn, &lab, p.id, pool_fields(Some((None, None)))))
        .await
        .unwrap();
    assert_eq!(
        updated.session_persistence.map(|sp| sp.kind),
        Some(SessionPersistenceType::SourceIp)
    );
    h.settle().await;
    let s = h.store.snapshot();
    assert_eq!(pl::show(&owner, &*s, p.id).unwrap().id, p.id);
    assert!(matches!(
        pl::show(&stranger, &*s, p.id),
        Err(ServiceError::Forbidden(_))
    ));
    assert_eq!(pl::list(&owner, &*s, None).unwrap().len(), 1);
    assert!(pl::list(&stranger, &*s, None).unwrap().is_empty());

    // Delete cascades: the members go PENDING_DELETE with the pool, the
    // listener loses its default pool; the controller removes them.
    h.member(&p.id.to_string(), "10.0.0.1", 80).await;
    h.store
        .write(|txn| pl::delete(&owner, txn, p.id))
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert!(
        s.members
            .children(p.id)
            .all(|m| m.provisioning_status == ProvisioningStatus::PendingDelete)
    );
    assert_eq!(s.listeners.get(&l).unwrap().default_pool_id, None);
    h.settle().await;
    let s = h.store.snapshot();
    assert!(s.pools.is_empty() && s.members.is_empty());
}

fn listener_fields(headers: Vec<(&str, Result<&str, &str>)>) -> ls::ListenerFields {
    ls::ListenerFields {
        name: Opt::Set("front".into()),
        description: Opt::Absent,
        admin_state_up: Opt::Absent,
        connection_limit: Opt::Absent,
        default_pool_id: Opt::Absent,
        insert_headers: if headers.is_empty() {
            Opt::Absent
        } else {
            Opt::Set(
                headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.map(str::to_string).map_err(str::to_string)))
                    .collect(),
            )
        },
        timeout_client_data: Opt::Absent,
        timeout_member_connect: Opt::Absent,
        timeout_member_data: Opt::Absent,
        timeout_tcp_inspect: Opt::Absent,
        default_tls_container_ref: Opt::Absent,
        sni_container_refs: Opt::Absent,
        client_ca_tls_container_ref: Opt::Absent,
        client_authentication: Opt::Absent,
        client_crl_container_ref: Opt::Absent,
        allowed_cidrs: Opt::Absent,
        tls_ciphers: Opt::Absent,
        tls_versions: Opt::Absent,
        alpn_protocols: Opt::Absent,
        hsts_max_age: Opt::Absent,
        hsts_include_subdomains: Opt::Absent,
        hsts_preload: Opt::Absent,
        tags: Opt::Absent,
    }
}

#[tokio::test]
async fn listener_operations_authorize_validate_whole_and_cascade_to_policies() {
    let h = Harness::new().await;
    let lb = uuid(&h.lb().await);
    h.listener(&lb.to_string(), "TCP", 81).await;
    let owner = caller(PROJECT, &["member"]);
    let stranger = caller(OTHER_PROJECT, &["member"]);
    let lab = Lab {
        quotas: QuotaDefaults::default(),
        refused: vec![],
        own: vec![],
    };
    let new = |protocol: ListenerProtocol, port: u16, fields: ls::ListenerFields| ls::NewListener {
        loadbalancer_id: lb,
        protocol,
        protocol_port: port,
        fields,
    };
    let create = async |ctx: &Context, n: ls::NewListener| {
        h.store.write(|txn| ls::create(ctx, txn, &lab, n)).await
    };

    // Another project's member may not add a listener.
    let err = create(
        &stranger,
        new(ListenerProtocol::Http, 80, listener_fields(vec![])),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    // The whole listener is validated: TLS needs a certificate, headers
    // need HTTP, a header value must be a string (once the names pass), a
    // port is taken once per protocol family.
    let err = create(
        &owner,
        new(
            ListenerProtocol::TerminatedHttps,
            443,
            listener_fields(vec![]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Validation failure: An SNI or default certificate container reference must be provided for TERMINATED_HTTPS listeners."
    );
    let xff = || vec![("X-Forwarded-For", Ok("True"))];
    let err = create(
        &owner,
        new(ListenerProtocol::Udp, 53, listener_fields(xff())),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Validation failure: insert-headers is not a valid option for a UDP protocol listener."
    );
    let err = create(
        &owner,
        new(
            ListenerProtocol::Http,
            80,
            listener_fields(vec![("X-Real-IP", Err("5"))]),
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Invalid input for field/attribute insert_headers. Value: '5'. Values must be strings"
    );
    let err = create(
        &owner,
        new(ListenerProtocol::Http, 81, listener_fields(vec![])),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    assert_eq!(h.store.snapshot().listeners.len(), 1);

    // Created: PENDING_CREATE, its headers normalised, the load balancer
    // locked; a second change meanwhile is a retry-safe conflict.
    let l = create(
        &owner,
        new(ListenerProtocol::Http, 80, listener_fields(xff())),
    )
    .await
    .unwrap();
    assert_eq!(l.provisioning_status, ProvisioningStatus::PendingCreate);
    assert_eq!(
        l.insert_headers.get("X-Forwarded-For").map(String::as_str),
        Some("True")
    );
    assert_eq!(
        h.store
            .snapshot()
            .loadbalancers
            .get(&lb)
            .unwrap()
            .provisioning_status,
        ProvisioningStatus::PendingUpdate
    );
    let err = h
        .store
        .write(|txn| ls::update(&owner, txn, &lab, l.id, listener_fields(vec![])))
        .await
        .unwrap_err();
    assert!(err.retry_safe(), "{err:?}");
    h.settle().await;

    // Reads: the owner's, not another project's.
    let s = h.store.snapshot();
    assert_eq!(ls::show(&owner, &*s, l.id).unwrap().id, l.id);
    assert!(matches!(
        ls::stats(&stranger, &*s, l.id),
        Err(ServiceError::Forbidden(_))
    ));
    assert!(ls::stats(&owner, &*s, l.id).is_ok());
    assert_eq!(ls::list(&owner, &*s, None).unwrap().len(), 2);
    assert!(ls::list(&stranger, &*s, None).unwrap().is_empty());

    // Delete cascades to its policies and their rules; the controller
    // removes them all.
    let pol = uuid(&h.policy(&l.id.to_string()).await);
    h.rule(&pol.to_string(), "/a").await;
    h.store
        .write(|txn| ls::delete(&owner, txn, l.id))
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert_eq!(
        s.l7policies.get(&pol).unwrap().provisioning_status,
        ProvisioningStatus::PendingDelete
    );
    assert!(
        s.l7rules
            .children(pol)
            .all(|r| r.provisioning_status == ProvisioningStatus::PendingDelete)
    );
    h.settle().await;
    let s = h.store.snapshot();
    assert!(s.listeners.get(&l.id).is_none());
    assert!(s.l7policies.is_empty() && s.l7rules.is_empty());
}

fn lb_fields(name: &str, vip_sg_ids: Opt<Vec<Uuid>>) -> lbs::LoadBalancerFields {
    lbs::LoadBalancerFields {
        name: Opt::Set(name.into()),
        description: Opt::Absent,
        admin_state_up: Opt::Absent,
        vip_qos_policy_id: Opt::Absent,
        vip_sg_ids,
        tags: Opt::Absent,
    }
}

#[tokio::test]
async fn load_balancer_operations_authorize_refuse_busy_and_cascade_the_tree() {
    let h = Harness::new().await;
    let lb = full_tree(&h).await;
    let owner = caller(PROJECT, &["member"]);
    let stranger = caller(OTHER_PROJECT, &["member"]);
    let admin = caller(OTHER_PROJECT, &["admin"]);

    // Another project's member may not change, fail over or delete it.
    let err = h
        .store
        .write(|txn| lbs::update(&stranger, txn, lb, lb_fields("x", Opt::Absent)))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    for ctx in [&stranger, &owner] {
        let err = h
            .store
            .write(|txn| lbs::failover(ctx, txn, lb))
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    }
    // A missing one is 403 to who may not fail over any, 404 to an admin.
    let missing = Uuid::new_v4();
    let err = h
        .store
        .write(|txn| lbs::failover(&stranger, txn, missing))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    let err = h
        .store
        .write(|txn| lbs::failover(&admin, txn, missing))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Load Balancer {missing} not found.")
    );
    // A security group the caller may not use is answered as a missing one.
    let sg = Uuid::new_v4();
    let err = h
        .store
        .write(|txn| lbs::update(&owner, txn, lb, lb_fields("x", Opt::Set(vec![sg]))))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Validation failure: Security group {sg} not found.")
    );
    // Children need a cascade.
    let err = h
        .store
        .write(|txn| lbs::delete(&owner, txn, lb, false))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Validation failure: Cannot delete Load Balancer {lb} - it has children")
    );

    // The owner's update: PENDING_UPDATE; meanwhile nothing else changes it.
    let updated = h
        .store
        .write(|txn| lbs::update(&owner, txn, lb, lb_fields("renamed", Opt::Absent)))
        .await
        .unwrap();
    assert_eq!(
        (updated.name.as_deref(), updated.provisioning_status),
        (Some("renamed"), ProvisioningStatus::PendingUpdate)
    );
    let err = h
        .store
        .write(|txn| lbs::delete(&owner, txn, lb, true))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Invalid state PENDING_UPDATE of loadbalancer resource {lb}")
    );
    h.settle().await;

    // Reads: the owner's only.
    let s = h.store.snapshot();
    assert_eq!(lbs::show(&owner, &*s, lb).unwrap().id, lb);
    assert_eq!(lbs::status(&owner, &*s, lb).unwrap().id, lb);
    assert_eq!(lbs::stats(&owner, &*s, lb).unwrap().bytes_in, 0);
    assert!(matches!(
        lbs::stats(&stranger, &*s, lb),
        Err(ServiceError::Forbidden(_))
    ));
    assert_eq!(lbs::list(&owner, &*s, None).unwrap().len(), 1);
    assert!(lbs::list(&stranger, &*s, None).unwrap().is_empty());

    // The cascade marks the whole tree; the controller removes it.
    h.store
        .write(|txn| lbs::delete(&owner, txn, lb, true))
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert!(
        s.listeners
            .iter()
            .all(|l| l.provisioning_status == ProvisioningStatus::PendingDelete)
    );
    assert!(
        s.members
            .iter()
            .all(|m| m.provisioning_status == ProvisioningStatus::PendingDelete)
    );
    h.settle().await;
    let s = h.store.snapshot();
    assert!(s.loadbalancers.is_empty() && s.pools.is_empty() && s.l7rules.is_empty());
}

#[tokio::test]
async fn a_fully_populated_graph_is_built_and_checked_whole_before_anything_is_written() {
    use statera_service::octavia::graph::{self, Graph, GraphListener, GraphPool};
    let h = Harness::new().await;
    let lb = uuid(&h.lb().await);
    let owner = caller(PROJECT, &["member"]);
    let lab = Lab {
        quotas: QuotaDefaults::default(),
        refused: vec![],
        own: vec![],
    };
    let listener = |port: u16, pool: Option<&str>| GraphListener {
        protocol: ListenerProtocol::Http,
        port,
        fields: listener_fields(vec![]),
        default_pool: pool.map(str::to_string),
        policies: vec![],
    };
    let graph = |ports: &[u16]| Graph {
        pools: vec![GraphPool {
            name: "web".into(),
            protocol: PoolProtocol::Http,
            fields: pool_fields(None),
            monitor: Some((HealthMonitorType::Http, monitor_fields(5))),
            members: vec![new_member("10.0.0.1", 80), new_member("10.0.0.2", 80)],
        }],
        listeners: ports
            .iter()
            .enumerate()
            .map(|(i, p)| listener(*p, (i == 0).then_some("web")))
            .collect(),
    };
    let before = h.store.snapshot();
    let counts = |s: &statera_store::State| {
        (
            s.listeners.len(),
            s.pools.len(),
            s.members.len(),
            s.healthmonitors.len(),
        )
    };
    let lb_row = (**before.loadbalancers.get(&lb).unwrap()).clone();
    // Two listeners of the request on one port: a conflict, nothing written.
    let err = h
        .store
        .write(|txn| graph::create(&owner, txn, &lab, &lb_row, graph(&[80, 80])))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
    assert_eq!(counts(&h.store.snapshot()), counts(&before));
    // Over a quota (one pool allowed, and it is taken): 403, nothing written.
    let tight = Lab {
        quotas: QuotaDefaults {
            pool: 0,
            ..QuotaDefaults::default()
        },
        refused: vec![],
        own: vec![],
    };
    let err = h
        .store
        .write(|txn| graph::create(&owner, txn, &tight, &lb_row, graph(&[80])))
        .await
        .unwrap_err();
    assert!(matches!(err, ServiceError::Forbidden(_)), "{err:?}");
    assert_eq!(counts(&h.store.snapshot()), counts(&before));
    // Whole: every object PENDING_CREATE under the load balancer, the
    // listeners' ids in the request's order, the first on the pool.
    let ids = h
        .store
        .write(|txn| graph::create(&owner, txn, &lab, &lb_row, graph(&[81, 80])))
        .await
        .unwrap();
    let s = h.store.snapshot();
    assert_eq!(counts(&s).0, counts(&before).0 + 2);
    let ports: Vec<u16> = ids
        .iter()
        .map(|id| s.listeners.get(id).unwrap().protocol_port)
        .collect();
    assert_eq!(ports, [81, 80]);
    let first = s.listeners.get(&ids[0]).unwrap();
    let pool = s.pools.get(&first.default_pool_id.unwrap()).unwrap();
    assert_eq!(pool.name.as_deref(), Some("web"));
    assert_eq!(s.members.children(pool.id).count(), 2);
    assert!(s.pool_monitor(pool.id).is_some());
    assert!(
        [first.provisioning_status, pool.provisioning_status]
            .iter()
            .all(|st| *st == ProvisioningStatus::PendingCreate)
    );
}
