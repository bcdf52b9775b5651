//! The node port's contract: one body of calls and expected answers, run over
//! [`super::FakeCluster`] by the unit test below and over a real OpenBao through
//! `VaultClient` in `tests/tests/real/adapters.rs`, so the fake cannot drift from the server.
//! It walks a cluster's life: a fresh node, init, a wrong share and its reset, unseal,
//! the refusals of a bad token, bootstrap's calls and a login, a join, autopilot's
//! promotion, a snapshot, a step-down and the removal of a peer.

use std::{fmt::Debug, future::Future, time::Duration};

use tokio::time::Instant;

use crate::{
    cluster::{
        node::{ChunkSource, NodeApi, RaftServer, VaultError},
        polling::{poll_until, Look},
    },
    ids::NodeAddr,
    secret::Secret,
    snapshots::archive::SnapshotCheck,
};

/// How long a wait in the contract may take: a real join and autopilot's promotion (10 s
/// by default) take seconds, a step-down with no voter to take over about 10 s.
const WAIT: Duration = Duration::from_secs(90);

/// A share of the right length that belongs to no cluster (base64 of
/// `wrong-canary-share`).
const WRONG_SHARE: &str = "d3JvbmctY2FuYXJ5LXNoYXJl";

/// Where the node broke the contract, and what it answered instead.
#[derive(Debug, thiserror::Error)]
#[error("node contract broken at \"{step}\": {found}")]
pub struct ContractBreach {
    /// The step, as the contract names it.
    pub step: String,
    /// What the node answered (never a share or a token).
    pub found: String,
}

/// What the contract learnt about the cluster it built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractReport {
    /// The Raft node id of the node it initialised.
    pub first: String,
    /// The Raft node id of the node that joined.
    pub joined: String,
    /// The node active after the step-down; the other one's peer was removed.
    pub active_after_step_down: String,
}

fn breach(step: &str, found: impl Debug) -> ContractBreach {
    ContractBreach {
        step: step.to_owned(),
        found: format!("{found:?}"),
    }
}

fn ensure(ok: bool, step: &str, found: impl Debug) -> Result<(), ContractBreach> {
    if ok {
        Ok(())
    } else {
        Err(breach(step, found))
    }
}

/// The answer of a call that must succeed.
fn answered<T>(step: &str, answer: Result<T, VaultError>) -> Result<T, ContractBreach> {
    answer.map_err(|e| breach(step, crate::error_chain(&e)))
}

/// The error of a call that must be refused with `status`.
fn refused<T: Debug>(
    step: &str,
    answer: Result<T, VaultError>,
    status: u16,
) -> Result<VaultError, ContractBreach> {
    match answer {
        Err(e) if e.status() == Some(status) => Ok(e),
        Err(e) => Err(breach(step, crate::error_chain(&e))),
        Ok(value) => Err(breach(step, format!("accepted with {value:?}"))),
    }
}

/// Polls `probe` until it gives a value, for at most [`WAIT`].
async fn wait<T, F, Fut>(what: &str, mut probe: F) -> Result<T, ContractBreach>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, ContractBreach>>,
{
    let deadline = Instant::now() + WAIT * 2;
    let waited = poll_until(what, WAIT, deadline, Duration::from_millis(250), || {
        let look = probe();
        async move {
            Ok::<_, ContractBreach>(match look.await? {
                Some(value) => Look::Ready(value),
                None => Look::NotYet("not yet".into()),
            })
        }
    })
    .await?;
    waited.map_err(|expired| breach(what, expired.to_string()))
}

fn ids(servers: &[RaftServer]) -> Vec<&str> {
    servers.iter().map(|s| s.node_id.as_str()).collect()
}

/// Runs the contract on two fresh, Shamir-sealed nodes `addrs[0]` and `addrs[1]` that
/// hold nothing yet; `leader_ca_pem` is what the joining node needs to trust the leader.
/// It leaves a one-node cluster behind. Polls take at most [`WAIT`] each.
pub async fn node_contract<N: NodeApi>(
    node: &N,
    addrs: &[NodeAddr],
    leader_ca_pem: Option<&str>,
) -> Result<ContractReport, ContractBreach> {
    let [a0, a1] = addrs else {
        return Err(breach("two node addresses", addrs.len()));
    };

    // A fresh node: not initialised, sealed, no seal configuration yet.
    let step = "health of a fresh node";
    let health = answered(step, node.health(a0).await)?;
    ensure(
        (health.code, health.initialized, health.sealed) == (501, false, true),
        step,
        &health,
    )?;
    let step = "seal status of a fresh node";
    let seal = answered(step, node.seal_status(a0).await)?;
    ensure(
        !seal.initialized && seal.sealed && (seal.threshold, seal.shares) == (0, 0),
        step,
        &seal,
    )?;

    // Init is one-shot.
    let step = "init 5/3";
    let init = answered(step, node.init(a0, 5, 3, false).await)?;
    ensure(init.shares.len() == 5, step, init.shares.len())?;
    let distinct: std::collections::BTreeSet<&str> =
        init.shares.iter().map(Secret::expose).collect();
    ensure(distinct.len() == 5, "five distinct shares", distinct.len())?;
    refused("a second init", node.init(a0, 5, 3, false).await, 400)?;
    let step = "seal status after init";
    let seal = answered(step, node.seal_status(a0).await)?;
    ensure(
        seal.initialized
            && seal.sealed
            && seal.seal_type == "shamir"
            && (seal.threshold, seal.shares, seal.progress) == (3, 5, 0),
        step,
        &seal,
    )?;
    let step = "seal status of the other node after init";
    let other = answered(step, node.seal_status(a1).await)?;
    ensure(!other.initialized && other.threshold == 0, step, &other)?;

    // A share cannot be checked alone: a wrong one counts, a repeated one counts once,
    // one that is not base64 or hex is refused, and a reset forgets them all.
    let wrong = Secret::new(WRONG_SHARE);
    refused(
        "a share that is not base64",
        node.unseal(a0, &Secret::new("not base64 !")).await,
        400,
    )?;
    let step = "a wrong share counts as progress";
    let seal = answered(step, node.unseal(a0, &wrong).await)?;
    ensure(seal.sealed && seal.progress == 1, step, &seal)?;
    let step = "a repeated share counts once";
    let seal = answered(step, node.unseal(a0, &wrong).await)?;
    ensure(seal.progress == 1, step, &seal)?;
    let step = "unseal reset";
    let seal = answered(step, node.unseal_reset(a0).await)?;
    ensure(seal.sealed && seal.progress == 0, step, &seal)?;

    // A wrong share among the threshold fails the unseal at the threshold, naming no share.
    answered("a wrong share", node.unseal(a0, &wrong).await)?;
    answered("a good share", node.unseal(a0, &init.shares[0]).await)?;
    let failed = refused(
        "a wrong share among the threshold",
        node.unseal(a0, &init.shares[1]).await,
        400,
    )?;
    let text = format!("{failed} {failed:?} {}", crate::error_chain(&failed));
    let leaked = init
        .shares
        .iter()
        .chain([&wrong, &init.root_token])
        .any(|s| text.contains(s.expose()));
    ensure(!leaked, "no secret in a refusal", "a share or token")?;
    let step = "a failed unseal starts over";
    let seal = answered(step, node.seal_status(a0).await)?;
    ensure(seal.sealed && seal.progress == 0, step, &seal)?;

    // The threshold of good shares unseals; the node becomes active.
    for (i, share) in init.shares.iter().take(3).enumerate() {
        let step = "unseal with the threshold";
        let seal = answered(step, node.unseal(a0, share).await)?;
        ensure(seal.sealed == (i < 2), step, &seal)?;
    }
    let health = wait("the initialised node to be active", || async {
        Ok(node
            .health(a0)
            .await
            .ok()
            .filter(|h| h.is_active() && h.cluster_id.is_some()))
    })
    .await?;
    ensure(!health.sealed && !health.standby, "active health", &health)?;
    let step = "unseal of an unsealed node";
    let seal = answered(step, node.unseal(a0, &init.shares[3]).await)?;
    ensure(!seal.sealed, step, &seal)?;
    refused(
        "unseal reset of an unsealed node",
        node.unseal_reset(a0).await,
        400,
    )?;
    let step = "leader status of the active node";
    let leader = answered(step, node.leader(a0).await)?;
    ensure(leader.is_self, step, &leader)?;

    // Every token-authenticated call refuses a token Vault does not know.
    let root = &init.root_token;
    let bad = Secret::new("not-a-token");
    let step = "a bad token";
    refused(step, node.raft_configuration(a0, &bad).await, 403)?;
    refused(step, node.autopilot_state(a0, &bad).await, 403)?;
    refused(step, node.step_down(a0, &bad).await, 403)?;
    refused(step, node.remove_peer(a0, &bad, "anyone").await, 403)?;
    refused(
        step,
        node.snapshot(a0, &bad, WAIT).await.map(|_| "a snapshot"),
        403,
    )?;
    let step = "token validity";
    let valid = (
        answered(step, node.token_is_valid(a0, root).await)?,
        answered(step, node.token_is_valid(a0, &bad).await)?,
    );
    ensure(valid == (true, false), step, valid)?;

    // The Raft configuration lists the one peer, leading and voting.
    let step = "raft configuration of one node";
    let servers = answered(step, node.raft_configuration(a0, root).await)?.servers;
    ensure(
        servers.len() == 1 && servers[0].leader && servers[0].voter,
        step,
        &servers,
    )?;
    let first = servers[0].node_id.clone();

    // Bootstrap's calls, then a login with the credentials they made.
    let step = "enable approle";
    let now = answered(
        step,
        node.ensure_auth_enabled(a0, root, "approle", "approle")
            .await,
    )?;
    let again = answered(
        step,
        node.ensure_auth_enabled(a0, root, "approle", "approle")
            .await,
    )?;
    ensure((now, again) == (true, false), step, (now, again))?;
    let policy = "path \"sys/storage/raft/configuration\" { capabilities = [\"read\"] }\n";
    answered(
        "write a policy",
        node.put_policy(a0, root, "contract", policy).await,
    )?;
    answered(
        "write an approle",
        node.put_approle(
            a0,
            root,
            "approle",
            "contract",
            "contract",
            &crate::cluster::node::AppRoleLimits {
                secret_id_ttl: std::time::Duration::from_secs(3600),
                bound_cidrs: vec!["127.0.0.0/8".into()],
            },
        )
        .await,
    )?;
    let role_id = answered(
        "read a role ID",
        node.approle_role_id(a0, root, "approle", "contract").await,
    )?;
    let secret_id = answered(
        "mint a secret ID",
        node.new_secret_id(a0, root, "approle", "contract").await,
    )?;
    let step = "approle login";
    let login = answered(
        step,
        node.approle_login(a0, "approle", &role_id, &secret_id)
            .await,
    )?;
    ensure(!login.lease.is_zero(), step, login.lease)?;
    answered(
        "the login's token reads what its policy allows",
        node.raft_configuration(a0, &login.token).await,
    )?;
    refused(
        "a login with a wrong secret ID",
        node.approle_login(a0, "approle", &role_id, &wrong).await,
        400,
    )?;
    answered("revoke self", node.revoke_self(a0, &login.token).await)?;
    let step = "a revoked token";
    let valid = answered(step, node.token_is_valid(a0, &login.token).await)?;
    ensure(!valid, step, valid)?;

    // The canary: its mount made once; nothing to read before the first write; what was
    // written read back.
    let step = "mount the canary's engine";
    let mounted = answered(step, node.ensure_canary_mount(a0, root).await)?;
    ensure(mounted, step, mounted)?;
    let step = "mount it again";
    let again = answered(step, node.ensure_canary_mount(a0, root).await)?;
    ensure(!again, step, again)?;
    let step = "a canary never written";
    let none = answered(step, node.read_canary(a0, root).await)?;
    ensure(none.is_none(), step, &none)?;
    answered(
        "write the canary",
        node.write_canary(a0, root, "contract-canary").await,
    )?;
    let step = "read the canary";
    let read = answered(step, node.read_canary(a0, root).await)?;
    ensure(read.as_deref() == Some("contract-canary"), step, &read)?;

    // A secret ID looked up names its accessor and age; destroyed by the accessor, it
    // no longer logs in nor is known; a second destroy finds nothing.
    let step = "look up a secret ID";
    let info = answered(
        step,
        node.secret_id_info(a0, root, "approle", "contract", &secret_id)
            .await,
    )?
    .ok_or_else(|| breach(step, "unknown"))?;
    ensure(
        !info.accessor.is_empty() && info.created <= chrono::Utc::now(),
        step,
        &info.accessor,
    )?;
    let step = "destroy a secret ID by its accessor";
    let destroyed = answered(
        step,
        node.destroy_secret_id(a0, root, "approle", "contract", &info.accessor)
            .await,
    )?;
    ensure(destroyed, step, destroyed)?;
    refused(
        "a login with a destroyed secret ID",
        node.approle_login(a0, "approle", &role_id, &secret_id)
            .await,
        400,
    )?;
    let step = "a destroyed secret ID is unknown";
    let gone = answered(
        step,
        node.secret_id_info(a0, root, "approle", "contract", &secret_id)
            .await,
    )?;
    ensure(gone.is_none(), step, gone.is_none())?;
    let step = "destroy it again";
    let again = answered(
        step,
        node.destroy_secret_id(a0, root, "approle", "contract", &info.accessor)
            .await,
    )?;
    ensure(!again, step, again)?;

    // A Shamir node that joins holds Raft data at once and is sealed; it becomes a peer
    // only once unsealed.
    let step = "join";
    let joined = answered(step, node.join(a1, a0, leader_ca_pem).await)?;
    ensure(joined, step, joined)?;
    let step = "health of a joined, sealed node";
    let health = answered(step, node.health(a1).await)?;
    ensure(
        (health.code, health.initialized, health.sealed) == (503, true, true),
        step,
        &health,
    )?;
    let step = "seal status of a joined node";
    let seal = answered(step, node.seal_status(a1).await)?;
    ensure(
        seal.initialized && seal.sealed && (seal.threshold, seal.shares) == (3, 5),
        step,
        &seal,
    )?;
    let step = "a joined, sealed node is not a peer yet";
    let servers = answered(step, node.raft_configuration(a0, root).await)?.servers;
    ensure(servers.len() == 1, step, ids(&servers))?;
    let step = "a repeated join";
    let again = answered(step, node.join(a1, a0, leader_ca_pem).await)?;
    ensure(again, step, again)?;
    for share in init.shares.iter().skip(2) {
        answered("unseal the joined node", node.unseal(a1, share).await)?;
    }
    wait("the joined node to be a standby", || async {
        Ok(node.health(a1).await.ok().filter(|h| h.code == 429))
    })
    .await?;
    let servers = wait("the joined node to be a peer", || async {
        let servers = answered(
            "raft configuration",
            node.raft_configuration(a0, root).await,
        )?
        .servers;
        Ok((servers.len() == 2).then_some(servers))
    })
    .await?;
    let joined = servers
        .iter()
        .find(|s| s.node_id != first)
        .map(|s| s.node_id.clone())
        .ok_or_else(|| breach("the joined node's id", ids(&servers)))?;
    ensure(
        servers.iter().any(|s| s.node_id == first && s.leader),
        "the first node still leads",
        &servers,
    )?;

    // Autopilot lists both and promotes the joined node once it is stable.
    let state = wait(
        "autopilot to judge the joined node a healthy voter",
        || async {
            let state = answered("autopilot state", node.autopilot_state(a0, root).await)?;
            let promoted = state
                .servers
                .get(&joined)
                .is_some_and(|s| s.healthy && s.is_voter());
            Ok(promoted.then_some(state))
        },
    )
    .await?;
    let step = "autopilot's view of two voters";
    ensure(
        state.leader.as_deref() == Some(first.as_str())
            && state.servers.len() == 2
            && state.servers.values().all(|s| s.healthy && s.is_voter()),
        step,
        &state,
    )?;

    // A snapshot out of the active node is a good archive, read to its end.
    let step = "snapshot";
    let mut body = answered(step, node.snapshot(a0, root, WAIT).await)?;
    let mut check = SnapshotCheck::new();
    while let Some(chunk) = answered(step, body.next_chunk().await)? {
        check.update(&chunk).map_err(|e| breach(step, e))?;
    }
    let facts = check.finish().map_err(|e| breach(step, e))?;
    ensure(facts.bytes > 0 && facts.index > 0, step, &facts)?;

    // The barrier keyring: a rotation adds one to the term with a newer key; the
    // automatic rotation policy reads back as written.
    let step = "keyring status";
    let before = answered(step, node.key_status(a0, root).await)?;
    ensure(before.term >= 1, step, &before)?;
    answered("keyring rotation", node.rotate_keyring(a0, root).await)?;
    let after = answered(step, node.key_status(a0, root).await)?;
    ensure(
        after.term == before.term + 1 && after.install_time > before.install_time,
        "keyring status after a rotation",
        (&before, &after),
    )?;
    let policy = crate::vault::KeyringPolicy {
        enabled: true,
        max_operations: 1_000_000,
        interval: Duration::from_secs(48 * 3600),
    };
    answered(
        "set the keyring policy",
        node.set_keyring_policy(a0, root, &policy).await,
    )?;
    let read = answered("keyring policy", node.keyring_policy(a0, root).await)?;
    ensure(read == policy, "keyring policy read back", &read)?;

    // A new root key: the keyring and the shares stay as they were.
    answered("root key rotation", node.rotate_root_key(a0, root).await)?;
    let step = "keyring status after a root key rotation";
    let status = answered(step, node.key_status(a0, root).await)?;
    ensure(status.term == after.term, step, &status)?;

    share_rotation_contract(node, a0, root, &init.shares).await?;

    // The active node steps down; a node leads again (the other voter, or itself after
    // its step-down sleep). With two voters the lead may move once more meanwhile: a
    // node that answered active and then refuses with 500 (no active node) is asked
    // again, as the functions do.
    answered("step down", node.step_down(a0, root).await)?;
    // The other node's peer is removed through the active node; removing it again
    // succeeds and changes nothing.
    let (active, active_id, other_id) = wait("a node to be active after the step-down", || {
        let (first, joined) = (first.clone(), joined.clone());
        async move {
            for (addr, id, other) in [(a0, &first, &joined), (a1, &joined, &first)] {
                if !node.health(addr).await.is_ok_and(|h| h.is_active()) {
                    continue;
                }
                match node.remove_peer(addr, root, other).await {
                    Ok(()) => return Ok(Some((addr.clone(), id.clone(), other.clone()))),
                    Err(e) if e.status() == Some(500) => {}
                    Err(e) => return Err(breach("remove peer", crate::error_chain(&e))),
                }
            }
            Ok(None)
        }
    })
    .await?;
    let step = "raft configuration after the removal";
    let servers = answered(step, node.raft_configuration(&active, root).await)?.servers;
    ensure(ids(&servers) == [active_id.as_str()], step, ids(&servers))?;
    answered(
        "remove a peer that is gone",
        node.remove_peer(&active, root, &other_id).await,
    )?;
    let servers = answered(step, node.raft_configuration(&active, root).await)?.servers;
    ensure(ids(&servers) == [active_id.as_str()], step, ids(&servers))?;

    Ok(ContractReport {
        first,
        joined,
        active_after_step_down: active_id,
    })
}

/// A share rotation on the active node `a0`, whose shares in force are `old`: the new
/// shares are handed out at the threshold of old ones, put in force only by the
/// threshold of new ones entered back, and from then on only they reach a threshold.
async fn share_rotation_contract<N: NodeApi>(
    node: &N,
    a0: &NodeAddr,
    root: &Secret,
    old: &[Secret],
) -> Result<(), ContractBreach> {
    use crate::vault::{RotationStep, ShareKind, VerifyStep};
    let kind = ShareKind::Unseal;
    let step = "no share rotation in progress";
    let idle = answered(step, node.share_rotation(a0, root, kind).await)?;
    ensure(!idle.started, step, &idle)?;
    refused(
        "recovery shares on a Shamir seal",
        node.share_rotation(a0, root, ShareKind::Recovery).await,
        400,
    )?;
    let step = "start a share rotation";
    let started = answered(step, node.start_share_rotation(a0, root, kind, 5, 3).await)?;
    ensure(
        started.started && !started.nonce.is_empty() && started.verification_nonce.is_none(),
        step,
        &started,
    )?;
    refused(
        "a second rotation while one is in progress",
        node.start_share_rotation(a0, root, kind, 5, 3).await,
        400,
    )?;
    let mut handed = None;
    for (i, share) in old.iter().take(3).enumerate() {
        let step = "enter a share in force";
        match answered(
            step,
            node.submit_rotation_share(a0, root, kind, &started.nonce, share)
                .await,
        )? {
            RotationStep::Progress(n) if n as usize == i + 1 && i < 2 => {}
            RotationStep::NewShares {
                shares,
                verification_nonce: Some(nonce),
            } if i == 2 => {
                handed = Some((shares, nonce));
            }
            other => {
                return Err(breach(
                    step,
                    format!("share {}: {:?}", i + 1, progress_of(&other)),
                ))
            }
        }
    }
    let (new, first_nonce) = handed.ok_or_else(|| breach("new shares", "none handed out"))?;
    ensure(new.len() == 5, "five new shares", new.len())?;
    let step = "the rotation waits for verification";
    let waiting = answered(step, node.share_rotation(a0, root, kind).await)?;
    ensure(
        waiting.verification_nonce.as_deref() == Some(first_nonce.as_str()),
        step,
        &waiting,
    )?;
    let step = "restart the verification";
    let nonce = answered(step, node.restart_verification(a0, root, kind).await)?
        .ok_or_else(|| breach(step, "no verification nonce"))?;
    ensure(nonce != first_nonce, step, &nonce)?;
    // The old shares entered back are refused at the threshold; a new nonce is issued.
    for share in &old[..2] {
        answered(
            "an old share entered back",
            node.submit_verification_share(a0, root, kind, &nonce, share)
                .await,
        )?;
    }
    refused(
        "old shares at the verification threshold",
        node.submit_verification_share(a0, root, kind, &nonce, &old[2])
            .await,
        400,
    )?;
    let step = "a new verification nonce after a refusal";
    let nonce = answered(step, node.share_rotation(a0, root, kind).await)?
        .verification_nonce
        .ok_or_else(|| breach(step, "none"))?;
    let mut verified = false;
    for share in &new[..3] {
        let step = "enter a new share back";
        if answered(
            step,
            node.submit_verification_share(a0, root, kind, &nonce, share)
                .await,
        )? == VerifyStep::Complete
        {
            verified = true;
        }
    }
    ensure(verified, "verification complete at the threshold", verified)?;
    let step = "no rotation in progress after verification";
    let done = answered(step, node.share_rotation(a0, root, kind).await)?;
    ensure(!done.started, step, &done)?;
    // Now only the new shares reach a threshold: a probe rotation with the old ones is
    // refused at the third, one with the new ones is handed shares; each is cancelled.
    for (shares, opens) in [(old, false), (new.as_slice(), true)] {
        let step = "a probe rotation";
        let probe = answered(step, node.start_share_rotation(a0, root, kind, 5, 3).await)?;
        for share in &shares[..2] {
            answered(
                step,
                node.submit_rotation_share(a0, root, kind, &probe.nonce, share)
                    .await,
            )?;
        }
        let third = node
            .submit_rotation_share(a0, root, kind, &probe.nonce, &shares[2])
            .await;
        let step = if opens {
            "the new shares reach the threshold"
        } else {
            "the old shares are refused at the threshold"
        };
        match (opens, third) {
            (true, Ok(RotationStep::NewShares { .. })) => {}
            (false, Err(e)) if e.status() == Some(400) => {}
            (_, other) => {
                return Err(breach(
                    step,
                    format!("{:?}", other.map(|o| progress_of(&o))),
                ))
            }
        }
        answered(
            "cancel the probe",
            node.cancel_share_rotation(a0, root, kind).await,
        )?;
        let step = "no rotation after the cancel";
        let after = answered(step, node.share_rotation(a0, root, kind).await)?;
        ensure(!after.started, step, &after)?;
    }
    answered(
        "cancel with nothing in progress",
        node.cancel_share_rotation(a0, root, kind).await,
    )?;
    Ok(())
}

/// A rotation step without its shares, for a breach's text.
fn progress_of(step: &crate::vault::RotationStep) -> String {
    match step {
        crate::vault::RotationStep::Progress(n) => format!("progress {n}"),
        crate::vault::RotationStep::NewShares {
            shares,
            verification_nonce,
        } => {
            format!(
                "{} new shares, verification nonce {verification_nonce:?}",
                shares.len()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FailingNode, Failure, FakeCluster};

    #[tokio::test(start_paused = true)]
    async fn the_fake_cluster_keeps_the_node_contract() {
        let cluster = FakeCluster::fresh(&["i-1", "i-2"]);
        let addrs = [cluster.addr("i-1"), cluster.addr("i-2")];
        let started = Instant::now();
        let report = node_contract(&cluster, &addrs, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (report.first.as_str(), report.joined.as_str()),
            ("i-1", "i-2")
        );
        assert_eq!(cluster.peers(), vec![report.active_after_step_down]);
        assert!(
            started.elapsed() >= Duration::from_secs(10),
            "the joined node waited for autopilot's stabilisation time"
        );
        assert_eq!(cluster.calls("init"), 2, "one init and one refused");
    }

    #[tokio::test(start_paused = true)]
    async fn the_contract_notices_a_node_that_answers_otherwise() {
        let node = FailingNode::new(FakeCluster::fresh(&["i-1", "i-2"]));
        let addrs = [node.inner.addr("i-1"), node.inner.addr("i-2")];
        node.fail("join", Failure::Status(500), 1);
        let breach = node_contract(&node, &addrs, None)
            .await
            .expect_err("a join that fails");
        assert_eq!(breach.step, "join", "{breach}");
        assert!(breach.found.contains("500"), "{breach}");
    }
}
