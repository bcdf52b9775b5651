//! The cluster as the functions see it: the Auto Scaling group's nodes, their health,
//! and the Vault login the functions use.

pub mod auth;
pub mod health;
pub mod lifecycle_actions;
pub mod locks;
pub mod policies;
pub mod polling;
pub mod ports;
