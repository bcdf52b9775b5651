//! The cluster's keys, in one place: where its shares, recovery shares, root token and
//! AppRole credentials are kept in SSM ([`KeyLayout`]), what kind of seal a node has
//! ([`SealKind`]), which generation of shares is in force ([`generations`]), reading the
//! threshold of shares, and the one unseal procedure that
//! launch, reconcile and restore use ([`unseal_with`]).

mod database;
mod generations;
mod layout;
mod unseal;

pub use self::{
    database::{database_generation, database_generation_for_catalog, record_database_rotation},
    generations::{generation_for_catalog, generations, newest_in_force, Generations},
    layout::{Generation, KeyLayout, ShareKind},
    unseal::{read_shares, unseal_with, SharesMissing, UnsealError},
};
use crate::{
    cluster::{
        node::{NodeApi, SealStatus},
        ports::ParameterStore,
    },
    ids::NodeAddr,
};

/// The generations a snapshot taken now is recorded with in its catalog entry. Either is
/// `None` (with a warning logged) when it could not be read: the snapshot is worth more
/// than its label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordedGenerations {
    /// The generation of shares in force, of the kind the node's seal uses.
    pub share: Option<Generation>,
    /// The generation of the database engines' root credentials.
    pub database: Option<Generation>,
}

impl RecordedGenerations {
    /// Reads both for a snapshot of the cluster whose active node is `node`.
    pub async fn now(
        vault: &(impl NodeApi + ?Sized),
        node: &NodeAddr,
        parameters: &(impl ParameterStore + ?Sized),
        keys: &KeyLayout,
    ) -> Self {
        Self {
            share: generation_for_catalog(vault, node, parameters, keys).await,
            database: database_generation_for_catalog(parameters, keys).await,
        }
    }
}

/// How a node's seal is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealKind {
    /// Shamir: the threshold of unseal shares must be entered.
    Shamir,
    /// Auto-unseal (transit, a cloud KMS, ...): the seal opens itself; the shares made at
    /// init are recovery shares. Holds the seal's type as the node names it.
    Auto(String),
}

impl SealKind {
    /// The seal of the node that answered `status`.
    pub fn of(status: &SealStatus) -> Self {
        if status.seal_type == "shamir" && !status.recovery_seal {
            Self::Shamir
        } else {
            Self::Auto(status.seal_type.clone())
        }
    }

    /// The kind of share this seal's init makes.
    pub fn shares(&self) -> ShareKind {
        match self {
            Self::Shamir => ShareKind::Unseal,
            Self::Auto(_) => ShareKind::Recovery,
        }
    }
}

/// The DR region's parameter store and the key its copies of the shares are encrypted
/// under.
pub struct DrKeys<P> {
    /// SSM in the DR region.
    pub parameters: P,
    /// `DR_KMS_KEY_ID`: a key of the DR region (one key per region: a multi-region key
    /// would tie the copies to the primary's key).
    pub kms_key: String,
}
