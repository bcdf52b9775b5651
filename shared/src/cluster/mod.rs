//! The cluster as the functions see it: the Auto Scaling group's nodes, their health,
//! and the Vault login the functions use.

pub mod auth;
pub mod dr_ports;
pub mod lifecycle_actions;
pub mod locks;
pub mod node;
pub mod policies;
pub mod polling;
pub mod ports;

use futures::future::join_all;

use self::node::{Health, NodeApi};

/// The first of `nodes` that answers as active, with its health, asking all of them at
/// once; `None` when none does.
pub async fn find_active(
    vault: &impl NodeApi,
    nodes: Vec<ports::FleetNode>,
) -> Option<(ports::FleetNode, Health)> {
    let healths = join_all(nodes.iter().map(|m| vault.health(&m.addr))).await;
    nodes
        .into_iter()
        .zip(healths)
        .find_map(|(m, h)| h.ok().filter(Health::is_active).map(|h| (m, h)))
}
