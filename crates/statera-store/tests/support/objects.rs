//! Objects the store's tests write.

#![allow(dead_code)]

use statera_model::*;
use uuid::Uuid;

/// A network of project `p` named `name`.
pub fn network(name: &str) -> Network {
    Network {
        id: Uuid::new_v4(),
        project_id: "p".into(),
        name: name.into(),
        description: String::new(),
        admin_state_up: true,
        shared: false,
        external: false,
        mtu: 1500,
        tags: vec![],
        created_at: now(),
        updated_at: None,
    }
}
