//! The in-memory image of the store: one [`Table`] per object kind.

use crate::ListenerStats;
use imbl::{OrdMap, OrdSet};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use statera_model::*;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// A kind of row the store keeps.
pub trait Record: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    type Key: Ord + Clone + Display + FromStr + Send + Sync + 'static;
    /// The SQL table (a constant, never user input).
    const TABLE: &'static str;
    fn key(&self) -> Self::Key;
    /// The object this one belongs to, for [`Table::children`].
    fn parent(&self) -> Option<Uuid>;
    fn table(state: &State) -> &Table<Self>;
    fn table_mut(state: &mut State) -> &mut Table<Self>;
}

/// All rows of one kind, with an index by parent. Cloning is O(1).
#[derive(Clone)]
pub struct Table<R: Record> {
    rows: OrdMap<R::Key, Arc<R>>,
    by_parent: OrdMap<Uuid, OrdSet<R::Key>>,
}

impl<R: Record> Default for Table<R> {
    fn default() -> Self {
        Table {
            rows: OrdMap::new(),
            by_parent: OrdMap::new(),
        }
    }
}

impl<R: Record> Table<R> {
    pub fn get(&self, key: &R::Key) -> Option<&Arc<R>> {
        self.rows.get(key)
    }

    pub fn contains(&self, key: &R::Key) -> bool {
        self.rows.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether `other` is this very table, unchanged (shares its root; O(1)).
    /// A cache derived from a table can key on it: any write to the table
    /// makes a new root.
    pub fn same_as(&self, other: &Table<R>) -> bool {
        self.rows.ptr_eq(&other.rows)
    }

    /// Every row, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<R>> {
        self.rows.values()
    }

    /// The rows whose parent is `parent`, in key order.
    pub fn children(&self, parent: Uuid) -> impl Iterator<Item = &Arc<R>> {
        self.by_parent
            .get(&parent)
            .into_iter()
            .flat_map(|keys| keys.iter())
            .filter_map(|k| self.rows.get(k))
    }

    pub(crate) fn insert(&mut self, row: R) {
        let key = row.key();
        if let Some(old_parent) = self.rows.get(&key).and_then(|old| old.parent()) {
            self.unindex(old_parent, &key);
        }
        if let Some(parent) = row.parent() {
            self.by_parent
                .entry(parent)
                .or_default()
                .insert(key.clone());
        }
        self.rows.insert(key, Arc::new(row));
    }

    pub(crate) fn remove(&mut self, key: &R::Key) -> Option<Arc<R>> {
        let old = self.rows.remove(key)?;
        if let Some(parent) = old.parent() {
            self.unindex(parent, key);
        }
        Some(old)
    }

    fn unindex(&mut self, parent: Uuid, key: &R::Key) {
        if let Some(keys) = self.by_parent.get_mut(&parent) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_parent.remove(&parent);
            }
        }
    }
}

/// A unit of work the controller owes a load balancer, in commit order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWork {
    pub seq: u64,
    pub lb_id: Uuid,
    /// The objects the change is about (not the parents only locked along):
    /// they go to ERROR if the data plane refuses the change.
    #[serde(default)]
    pub subjects: Vec<Uuid>,
    /// A failover was asked (`PUT …/failover`): the load balancer is to be
    /// moved off what serves it, where its data plane can.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failover: bool,
}

/// Everything the store holds. Cloning is O(1).
#[derive(Clone, Default)]
pub struct State {
    pub loadbalancers: Table<LoadBalancer>,
    pub listeners: Table<Listener>,
    pub pools: Table<Pool>,
    pub members: Table<Member>,
    pub healthmonitors: Table<HealthMonitor>,
    pub l7policies: Table<L7Policy>,
    pub l7rules: Table<L7Rule>,
    pub quotas: Table<Quota>,
    pub flavors: Table<Flavor>,
    pub flavor_profiles: Table<FlavorProfile>,
    pub availability_zones: Table<AvailabilityZone>,
    pub availability_zone_profiles: Table<AvailabilityZoneProfile>,
    pub amphorae: Table<Amphora>,
    pub networks: Table<Network>,
    pub subnets: Table<Subnet>,
    pub ports: Table<Port>,
    pub routers: Table<Router>,
    pub floating_ips: Table<FloatingIp>,
    pub security_groups: Table<SecurityGroup>,
    pub security_group_rules: Table<SecurityGroupRule>,
    pub listener_stats: Table<ListenerStats>,
    pub domains: Table<identity::Domain>,
    pub projects: Table<identity::Project>,
    pub users: Table<identity::User>,
    pub groups: Table<identity::Group>,
    pub roles: Table<identity::Role>,
    pub role_assignments: Table<identity::RoleAssignment>,
    pub application_credentials: Table<identity::ApplicationCredential>,
    pub catalog_services: Table<identity::CatalogService>,
    pub catalog_endpoints: Table<identity::CatalogEndpoint>,
    pub regions: Table<identity::Region>,
    pub revocations: Table<identity::Revocation>,
    pub secrets: Table<keymanager::Secret>,
    pub secret_containers: Table<keymanager::SecretContainer>,
    pub kek: Table<keymanager::KekRecord>,
    pub pending_work: Table<PendingWork>,
    pub lb_claims: Table<Claim>,
    pub(crate) next_seq: u64,
    /// The database revision this image reflects: the number of commits
    /// that made it (PostgreSQL's `statera_head.rev`; counted in memory
    /// since the open on SQLite). A newer image never gives way to an older.
    pub(crate) rev: u64,
}

/// Which controller serves a load balancer (several controllers sharing
/// one PostgreSQL database; a single controller on SQLite claims nothing).
/// Written in the same serialised commits as everything else, so a
/// controller that checks its claim inside a write is fenced: once another
/// controller adopted the load balancer, the old owner's writes about it
/// are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub lb_id: Uuid,
    /// The controller's node id (`statera serve --node-id`).
    pub controller: String,
    /// Bumped at every change of owner.
    pub epoch: u64,
}

/// Calls `$m!` with every record type the store keeps (the one list: the
/// load at open and the catch-up from PostgreSQL's log both use it).
macro_rules! with_records {
    ($m:ident) => {
        $m!(
            LoadBalancer,
            Listener,
            Pool,
            Member,
            HealthMonitor,
            L7Policy,
            L7Rule,
            Quota,
            Flavor,
            FlavorProfile,
            AvailabilityZone,
            AvailabilityZoneProfile,
            Amphora,
            Network,
            Subnet,
            Port,
            Router,
            FloatingIp,
            SecurityGroup,
            SecurityGroupRule,
            ListenerStats,
            identity::Domain,
            identity::Project,
            identity::User,
            identity::Group,
            identity::Role,
            identity::RoleAssignment,
            identity::ApplicationCredential,
            identity::CatalogService,
            identity::CatalogEndpoint,
            identity::Region,
            identity::Revocation,
            keymanager::Secret,
            keymanager::SecretContainer,
            keymanager::KekRecord,
            PendingWork,
            Claim
        )
    };
}
pub(crate) use with_records;

macro_rules! record {
    ($ty:ty, $key:ty, $table:literal, $field:ident, |$r:ident| key = $k:expr, parent = $p:expr) => {
        impl Record for $ty {
            type Key = $key;
            const TABLE: &'static str = $table;
            fn key(&self) -> $key {
                let $r = self;
                $k
            }
            fn parent(&self) -> Option<Uuid> {
                #[allow(unused_variables)]
                let $r = self;
                $p
            }
            fn table(state: &State) -> &Table<Self> {
                &state.$field
            }
            fn table_mut(state: &mut State) -> &mut Table<Self> {
                &mut state.$field
            }
        }
    };
}

record!(
    LoadBalancer,
    Uuid,
    "loadbalancers",
    loadbalancers,
    |r| key = r.id,
    parent = None
);
record!(
    Listener,
    Uuid,
    "listeners",
    listeners,
    |r| key = r.id,
    parent = Some(r.loadbalancer_id)
);
record!(
    Pool,
    Uuid,
    "pools",
    pools,
    |r| key = r.id,
    parent = Some(r.loadbalancer_id)
);
record!(
    Member,
    Uuid,
    "members",
    members,
    |r| key = r.id,
    parent = Some(r.pool_id)
);
record!(
    HealthMonitor,
    Uuid,
    "healthmonitors",
    healthmonitors,
    |r| key = r.id,
    parent = Some(r.pool_id)
);
record!(
    L7Policy,
    Uuid,
    "l7policies",
    l7policies,
    |r| key = r.id,
    parent = Some(r.listener_id)
);
record!(
    L7Rule,
    Uuid,
    "l7rules",
    l7rules,
    |r| key = r.id,
    parent = Some(r.l7policy_id)
);
record!(
    Quota,
    String,
    "quotas",
    quotas,
    |r| key = r.project_id.clone(),
    parent = None
);
record!(
    Flavor,
    Uuid,
    "flavors",
    flavors,
    |r| key = r.id,
    parent = Some(r.flavor_profile_id)
);
record!(
    FlavorProfile,
    Uuid,
    "flavor_profiles",
    flavor_profiles,
    |r| key = r.id,
    parent = None
);
record!(
    AvailabilityZone,
    String,
    "availability_zones",
    availability_zones,
    |r| key = r.name.clone(),
    parent = Some(r.availability_zone_profile_id)
);
record!(
    AvailabilityZoneProfile,
    Uuid,
    "availability_zone_profiles",
    availability_zone_profiles,
    |r| key = r.id,
    parent = None
);
record!(
    Amphora,
    Uuid,
    "amphorae",
    amphorae,
    |r| key = r.id,
    parent = Some(r.loadbalancer_id)
);
record!(
    Network,
    Uuid,
    "networks",
    networks,
    |r| key = r.id,
    parent = None
);
record!(
    Subnet,
    Uuid,
    "subnets",
    subnets,
    |r| key = r.id,
    parent = Some(r.network_id)
);
record!(
    Port,
    Uuid,
    "ports",
    ports,
    |r| key = r.id,
    parent = Some(r.network_id)
);
record!(
    Router,
    Uuid,
    "routers",
    routers,
    |r| key = r.id,
    parent = None
);
record!(
    FloatingIp,
    Uuid,
    "floating_ips",
    floating_ips,
    |r| key = r.id,
    parent = None
);
record!(
    SecurityGroup,
    Uuid,
    "security_groups",
    security_groups,
    |r| key = r.id,
    parent = None
);
record!(
    SecurityGroupRule,
    Uuid,
    "security_group_rules",
    security_group_rules,
    |r| key = r.id,
    parent = Some(r.security_group_id)
);
record!(
    ListenerStats,
    Uuid,
    "listener_stats",
    listener_stats,
    |r| key = r.listener_id,
    parent = Some(r.loadbalancer_id)
);
record!(
    identity::Domain,
    String,
    "domains",
    domains,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::Project,
    String,
    "projects",
    projects,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::User,
    String,
    "users",
    users,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::Group,
    String,
    "groups",
    groups,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::Role,
    String,
    "roles",
    roles,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::RoleAssignment,
    String,
    "role_assignments",
    role_assignments,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::ApplicationCredential,
    String,
    "application_credentials",
    application_credentials,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::CatalogService,
    String,
    "catalog_services",
    catalog_services,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::CatalogEndpoint,
    String,
    "catalog_endpoints",
    catalog_endpoints,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::Region,
    String,
    "regions",
    regions,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    identity::Revocation,
    String,
    "revocations",
    revocations,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    keymanager::Secret,
    Uuid,
    "secrets",
    secrets,
    |r| key = r.id,
    parent = None
);
record!(
    keymanager::SecretContainer,
    Uuid,
    "secret_containers",
    secret_containers,
    |r| key = r.id,
    parent = None
);
record!(
    keymanager::KekRecord,
    String,
    "key_manager_keys",
    kek,
    |r| key = r.id.clone(),
    parent = None
);
record!(
    PendingWork,
    u64,
    "pending_work",
    pending_work,
    |r| key = r.seq,
    parent = Some(r.lb_id)
);

record!(
    Claim,
    Uuid,
    "lb_claims",
    lb_claims,
    |r| key = r.lb_id,
    parent = None
);

impl State {
    /// The database revision this image reflects.
    pub fn revision(&self) -> u64 {
        self.rev
    }

    /// The controller that serves `lb_id`, when controllers share the store.
    pub fn claim_of(&self, lb_id: Uuid) -> Option<&str> {
        self.lb_claims.get(&lb_id).map(|c| c.controller.as_str())
    }

    pub fn get<R: Record>(&self, key: &R::Key) -> Option<&Arc<R>> {
        R::table(self).get(key)
    }

    /// The load balancer that owns a pool.
    pub fn pool_lb(&self, pool: &Pool) -> Option<&Arc<LoadBalancer>> {
        self.loadbalancers.get(&pool.loadbalancer_id)
    }

    /// Listeners whose default pool is `pool_id`.
    pub fn listeners_using_pool(
        &self,
        lb_id: Uuid,
        pool_id: Uuid,
    ) -> impl Iterator<Item = &Arc<Listener>> {
        self.listeners
            .children(lb_id)
            .filter(move |l| l.default_pool_id == Some(pool_id))
    }

    /// The health monitor of a pool, if any.
    pub fn pool_monitor(&self, pool_id: Uuid) -> Option<&Arc<HealthMonitor>> {
        self.healthmonitors.children(pool_id).next()
    }

    /// The load balancers with pending work, oldest first, each once.
    pub fn pending_lbs(&self) -> Vec<Uuid> {
        let mut seen = std::collections::HashSet::new();
        self.pending_work
            .iter()
            .filter(|w| seen.insert(w.lb_id))
            .map(|w| w.lb_id)
            .collect()
    }
}
