//! The narrow interface the service reaches the store through.
//!
//! [`StoreRead`] reads (one object by key, the children of an object, how many
//! objects of a kind a project owns and which, every object of a kind);
//! [`StoreWrite`] adds what a change does
//! (put, delete, enqueue work for the controller). Locking a load balancer is
//! built on those ([`crate::lb::lock_lb`]). The in-memory image
//! (`statera_store::State`, for reads) and a write transaction
//! (`statera_store::Txn`) implement them here; a second backend implements
//! the same two traits over its own storage, keyed by the same
//! [`Record`] description of each kind (its key, its parent, its table name).

use statera_model::*;
use statera_store::{Record, State, StoreError, Txn};
use std::sync::Arc;
use uuid::Uuid;

/// A kind of object that belongs to a project (what quotas count).
pub trait Owned: Record {
    fn project_id(&self) -> &str;
}

macro_rules! owned {
    ($($t:ty),*) => {$(
        impl Owned for $t {
            fn project_id(&self) -> &str {
                &self.project_id
            }
        }
    )*};
}
owned!(
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule,
    Quota,
    Network,
    Subnet,
    Port,
    Router,
    FloatingIp,
    SecurityGroup,
    SecurityGroupRule
);

/// What the service reads.
pub trait StoreRead {
    /// One object by key.
    fn get<R: Record>(&self, key: &R::Key) -> Option<Arc<R>>;
    /// The objects of kind `R` whose parent is `parent`, in key order.
    fn children<R: Record>(&self, parent: Uuid) -> Vec<Arc<R>>;
    /// How many objects of kind `R` `project` owns.
    fn count_by_project<R: Owned>(&self, project: &str) -> usize;
    /// The objects of kind `R` that `project` owns (every project's with
    /// `None`), in key order.
    fn list_by_project<R: Owned>(&self, project: Option<&str>) -> Vec<Arc<R>>;
    /// Every object of kind `R`, in key order: the scan of a kind no project
    /// owns (flavors, availability zones, their profiles).
    fn all<R: Record>(&self) -> Vec<Arc<R>>;
}

/// What a change does, inside one transaction: all of it commits or none.
pub trait StoreWrite: StoreRead {
    /// Insert or replace an object.
    fn put<R: Record>(&mut self, row: R) -> Result<(), StoreError>;
    /// Remove an object (a no-op if it is absent).
    fn delete<R: Record>(&mut self, key: &R::Key);
    /// Record that the controller owes load balancer `lb_id` work about
    /// `subjects` (committed with the change, processed in commit order).
    fn enqueue(&mut self, lb_id: Uuid, subjects: &[Uuid]) -> Result<(), StoreError>;
    /// Record that the controller owes load balancer `lb_id` a failover
    /// (moved off what serves it, where its data plane can).
    fn enqueue_failover(&mut self, lb_id: Uuid) -> Result<(), StoreError>;
}

impl StoreRead for State {
    fn get<R: Record>(&self, key: &R::Key) -> Option<Arc<R>> {
        R::table(self).get(key).cloned()
    }

    fn children<R: Record>(&self, parent: Uuid) -> Vec<Arc<R>> {
        R::table(self).children(parent).cloned().collect()
    }

    fn count_by_project<R: Owned>(&self, project: &str) -> usize {
        R::table(self)
            .iter()
            .filter(|o| o.project_id() == project)
            .count()
    }

    fn list_by_project<R: Owned>(&self, project: Option<&str>) -> Vec<Arc<R>> {
        R::table(self)
            .iter()
            .filter(|o| project.is_none_or(|p| o.project_id() == p))
            .cloned()
            .collect()
    }

    fn all<R: Record>(&self) -> Vec<Arc<R>> {
        R::table(self).iter().cloned().collect()
    }
}

impl StoreRead for Txn {
    fn get<R: Record>(&self, key: &R::Key) -> Option<Arc<R>> {
        StoreRead::get(self.state(), key)
    }

    fn children<R: Record>(&self, parent: Uuid) -> Vec<Arc<R>> {
        StoreRead::children(self.state(), parent)
    }

    fn count_by_project<R: Owned>(&self, project: &str) -> usize {
        self.state().count_by_project::<R>(project)
    }

    fn list_by_project<R: Owned>(&self, project: Option<&str>) -> Vec<Arc<R>> {
        self.state().list_by_project::<R>(project)
    }

    fn all<R: Record>(&self) -> Vec<Arc<R>> {
        self.state().all::<R>()
    }
}

impl StoreWrite for Txn {
    fn put<R: Record>(&mut self, row: R) -> Result<(), StoreError> {
        Txn::put(self, row)
    }

    fn delete<R: Record>(&mut self, key: &R::Key) {
        Txn::delete::<R>(self, key)
    }

    fn enqueue(&mut self, lb_id: Uuid, subjects: &[Uuid]) -> Result<(), StoreError> {
        Txn::enqueue(self, lb_id, subjects)
    }

    fn enqueue_failover(&mut self, lb_id: Uuid) -> Result<(), StoreError> {
        Txn::enqueue_failover(self, lb_id)
    }
}
