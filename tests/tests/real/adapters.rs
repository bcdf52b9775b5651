//! The adapters against the real servers: the Vault client against OpenBao (TLS, status
//! codes, errors, and the node port's contract, which the fake keeps too), and the AWS
//! adapters against moto (unknown group, missing parameter, address from tag or private
//! IP).

use std::time::Duration;

use anyhow::Result;
use shared::{
    aws::{AsgFleet, SsmParameters},
    cluster::ports::{Fleet, FleetError, ParameterError, ParameterStore},
    config::{CaSource, ClusterSettings, Env, VaultSettings},
    ids::NodeAddr,
    secret::Secret,
    testing::node_contract,
    vault::{VaultClient, VaultError},
};
use testbed::{
    free_port,
    moto::{Moto, RegionFixture},
    openbao::{BaoCluster, Seal},
    unique_name,
};

fn client(ca: CaSource) -> Result<VaultClient> {
    Ok(VaultClient::new(&VaultSettings {
        ca,
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
    })?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_client_reads_every_state_of_a_real_cluster() -> Result<()> {
    let ids: Vec<String> = ["a-1", "a-2"].map(String::from).into();
    let mut bao = BaoCluster::start(&ids, Seal::Shamir).await?;
    let vault = client(CaSource::Pem(bao.ca.ca_pem.clone()))?;
    let addrs = bao.node_addrs()?;
    let addr = |i: usize| -> Result<NodeAddr> { Ok(addrs[i].clone()) };

    let fresh = vault.health(&addr(0)?).await?;
    assert_eq!(
        (fresh.code, fresh.initialized, fresh.sealed),
        (501, false, true),
        "not initialised"
    );

    bao.bootstrap().await?;
    let active = bao.active_index().await?;
    let standby = 1 - active;
    let health = vault.health(&addr(active)?).await?;
    assert!(
        health.is_active() && health.cluster_id.is_some(),
        "{health:?}"
    );
    assert_eq!(vault.health(&addr(standby)?).await?.code, 429);
    let seal = vault.seal_status(&addr(standby)?).await?;
    assert_eq!(
        (
            seal.seal_type.as_str(),
            seal.sealed,
            seal.threshold,
            seal.shares
        ),
        ("shamir", false, 3, 5)
    );

    let policy = format!(
        "{}path \"sys/storage/raft/configuration\" {{ capabilities = [\"read\"] }}\n",
        shared::cluster::policies::HEALTH_PROBE
    );
    let (role_id, secret_id) = bao.approle("adapter-test", &policy).await?;
    // Log in through the active node: OpenBao's standbys serve some requests from their
    // own, slightly stale, state, and may not know a secret ID issued a moment ago.
    let login = vault
        .approle_login(
            &addr(active)?,
            "approle",
            &Secret::new(role_id.clone()),
            &Secret::new(secret_id),
        )
        .await?;
    assert_eq!(
        login.lease,
        Duration::from_secs(300),
        "the role's token_ttl"
    );
    let raft = vault
        .raft_configuration(&addr(active)?, &login.token)
        .await?;
    let mut peers: Vec<&str> = raft.servers.iter().map(|s| s.node_id.as_str()).collect();
    peers.sort();
    assert_eq!(peers, ["a-1", "a-2"]);
    let autopilot = vault.autopilot_state(&addr(standby)?, &login.token).await?;
    assert_eq!(autopilot.servers.len(), 2);
    assert_eq!(autopilot.leader.as_deref(), Some(ids[active].as_str()));

    // Vault's "no" is an answer with its message, never retried, never holding the secret.
    let refused = vault
        .approle_login(
            &addr(active)?,
            "approle",
            &Secret::new(role_id),
            &Secret::new("wrong-secret-canary"),
        )
        .await
        .expect_err("wrong secret id");
    assert_eq!(refused.status(), Some(400), "{refused}");
    assert!(!format!("{refused} {refused:?}").contains("wrong-secret-canary"));
    let forbidden = vault
        .autopilot_state(&addr(active)?, &Secret::new("not-a-token"))
        .await
        .expect_err("bad token");
    assert_eq!(forbidden.status(), Some(403));

    // Sealed: health says so with 503, seal status with the unseal progress.
    bao.seal(standby).await?;
    assert_eq!(vault.health(&addr(standby)?).await?.code, 503);
    let sealed = vault.seal_status(&addr(standby)?).await?;
    assert!(
        sealed.sealed && sealed.initialized && sealed.progress == 0,
        "{sealed:?}"
    );

    // A certificate from another CA is refused: no one skips TLS verification.
    let stranger = BaoCluster::start(&["other".to_owned()], Seal::Shamir).await?;
    let other_ca = client(CaSource::Pem(stranger.ca.ca_pem.clone()))?;
    let err = other_ca.health(&addr(active)?).await.expect_err("wrong CA");
    assert!(err.is_unreachable(), "{err}");
    Ok(())
}

/// The same body `shared::testing::FakeCluster` passes in its unit test, over the real
/// client and two real nodes: what the fake answers, OpenBao answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_client_keeps_the_node_contract() -> Result<()> {
    let ids: Vec<String> = ["k-1", "k-2"].map(String::from).into();
    let bao = BaoCluster::start(&ids, Seal::Shamir).await?;
    let vault = client(CaSource::Pem(bao.ca.ca_pem.clone()))?;
    let report = node_contract(&vault, &bao.node_addrs()?, Some(&bao.ca.ca_pem)).await?;
    assert_eq!(
        (report.first.as_str(), report.joined.as_str()),
        ("k-1", "k-2")
    );
    let active = bao.active_index().await?;
    assert_eq!(report.active_after_step_down, ids[active]);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_node_is_retried_then_named() -> Result<()> {
    let vault = client(CaSource::System)?;
    let node: NodeAddr = format!("https://127.0.0.1:{}", free_port()?)
        .parse()
        .map_err(anyhow::Error::msg)?;
    match vault.health(&node).await {
        Err(VaultError::Unreachable {
            node: named,
            attempts,
            ..
        }) => {
            assert_eq!(named, node);
            assert_eq!(attempts, 3, "one try and two retries");
        }
        other => anyhow::bail!("expected Unreachable, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn the_aws_adapters_name_what_is_missing() -> Result<()> {
    let moto = Moto::shared().await?;
    let name = unique_name("ad");
    let fixture = RegionFixture::create(moto, "eu-west-1", &name).await?;
    let settings = |asg: &str| {
        ClusterSettings::from_env(&Env::from_pairs([
            ("CLUSTER_NAME", "ad"),
            ("ASG_NAME", asg),
        ]))
    };

    let missing = AsgFleet::from_sdk(&fixture.sdk, settings("no-such-group")?)
        .in_service()
        .await
        .expect_err("unknown group");
    assert!(
        matches!(missing, FleetError::NoSuchGroup { .. }),
        "{missing}"
    );
    assert!(missing.to_string().contains("no-such-group"));

    // Every node is addressed by the private IP EC2 reports, with VAULT_SCHEME and
    // VAULT_PORT; a tag naming another address, or no address at all, changes nothing.
    let ids = fixture.create_asg(2, false).await?;
    fixture
        .tag(&ids[0], "vault-api-addr", "https://127.0.0.1:18200")
        .await?;
    fixture
        .tag(&ids[1], "vault-api-addr", "10.0.0.9:8200")
        .await?;
    let nodes = AsgFleet::from_sdk(&fixture.sdk, settings(&fixture.asg)?)
        .in_service()
        .await?;
    let expected: Vec<(String, String)> = fixture
        .private_ips(&ids)
        .await?
        .into_iter()
        .map(|(id, ip)| (id, format!("https://{ip}:8200")))
        .collect();
    let found: Vec<(String, String)> = nodes
        .iter()
        .map(|n| (n.instance.to_string(), n.addr.to_string()))
        .collect();
    assert_eq!(found, expected, "private IPs, never the tag");

    let parameters = SsmParameters::from_sdk(&fixture.sdk);
    let absent = format!("/{name}/absent");
    match parameters.secret(&absent).await {
        Err(ParameterError::Missing { name: named }) => assert_eq!(named, absent),
        other => anyhow::bail!("expected Missing, got {other:?}"),
    }
    fixture
        .put_secret_parameter(&format!("/{name}/present"), "parameter-canary")
        .await?;
    assert_eq!(
        parameters
            .secret(&format!("/{name}/present"))
            .await?
            .expose(),
        "parameter-canary"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_client_builds_and_shrinks_a_cluster_without_leaking_a_share() -> Result<()> {
    let ids: Vec<String> = ["b-1", "b-2", "b-3"].map(String::from).into();
    let bao = BaoCluster::start(&ids, Seal::Shamir).await?;
    let vault = client(CaSource::Pem(bao.ca.ca_pem.clone()))?;
    let addrs = bao.node_addrs()?;

    let init = vault.init(&addrs[0], 5, 3, false).await?;
    assert_eq!(init.shares.len(), 5);
    let again = vault
        .init(&addrs[0], 5, 3, false)
        .await
        .expect_err("init is one-shot");
    assert_eq!(again.status(), Some(400), "{again}");

    // A share cannot be checked alone: a wrong one counts as progress, and the unseal
    // fails at the threshold, without echoing any share. Progress can be reset.
    let wrong = Secret::new("d3JvbmctY2FuYXJ5LXNoYXJl");
    assert_eq!(vault.unseal(&addrs[0], &wrong).await?.progress, 1);
    assert_eq!(vault.unseal_reset(&addrs[0]).await?.progress, 0);
    vault.unseal(&addrs[0], &wrong).await?;
    vault.unseal(&addrs[0], &init.shares[0]).await?;
    let failed = vault
        .unseal(&addrs[0], &init.shares[1])
        .await
        .expect_err("a wrong share among three");
    assert_eq!(failed.status(), Some(400), "{failed}");
    let text = format!("{failed} {failed:?}");
    for secret in [
        wrong.expose(),
        init.shares[0].expose(),
        init.shares[1].expose(),
    ] {
        assert!(!text.contains(secret), "a share reached the error: {text}");
    }
    assert_eq!(
        vault.seal_status(&addrs[0]).await?.progress,
        0,
        "a failed unseal starts over"
    );
    for (i, share) in init.shares.iter().take(3).enumerate() {
        let status = vault.unseal(&addrs[0], share).await?;
        assert_eq!(status.sealed, i < 2, "sealed until the threshold");
    }
    testbed::poll_until("node 0 active", Duration::from_secs(30), || async {
        Ok(vault
            .health(&addrs[0])
            .await
            .ok()
            .filter(|h| h.is_active())
            .map(|_| ()))
    })
    .await?;

    for i in 1..3 {
        assert!(
            vault
                .join(&addrs[i], &addrs[0], Some(&bao.ca.ca_pem))
                .await?,
            "node {i} joined"
        );
        for share in init.shares.iter().take(3) {
            vault.unseal(&addrs[i], share).await?;
        }
        testbed::poll_until("a standby", Duration::from_secs(30), || async {
            Ok(vault
                .health(&addrs[i])
                .await
                .ok()
                .filter(|h| h.code == 429)
                .map(|_| ()))
        })
        .await?;
    }
    let root = &init.root_token;
    // Only voters can take over: wait until autopilot has promoted both (its
    // stabilisation time), as node-lifecycle will before calling a launch done.
    testbed::poll_until("3 raft voters", Duration::from_secs(60), || async {
        let servers = vault.raft_configuration(&addrs[0], root).await?.servers;
        Ok((servers.len() == 3 && servers.iter().all(|s| s.voter)).then_some(()))
    })
    .await?;

    // Step the leader down: another node takes over.
    vault.step_down(&addrs[0], root).await?;
    let leader = testbed::poll_until("a new leader", Duration::from_secs(60), || async {
        for (i, addr) in addrs.iter().enumerate().skip(1) {
            if vault.health(addr).await.ok().is_some_and(|h| h.is_active()) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    })
    .await?;

    // Remove a peer through the new leader: it leaves the configuration.
    let gone = if leader == 1 { 2 } else { 1 };
    vault.remove_peer(&addrs[leader], root, &ids[gone]).await?;
    let peers: Vec<String> = vault
        .raft_configuration(&addrs[leader], root)
        .await?
        .servers
        .into_iter()
        .map(|s| s.node_id)
        .collect();
    assert!(!peers.contains(&ids[gone]) && peers.len() == 2, "{peers:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamo_locks_admit_one_owner_at_a_time() -> Result<()> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use shared::{
        aws::DynamoLocks,
        cluster::locks::{Claim, Locks, Released},
    };
    let moto = Moto::shared().await?;
    let fixture = RegionFixture::create(moto, "eu-west-1", &unique_name("lock")).await?;
    let locks = DynamoLocks::new(
        aws_sdk_dynamodb::Client::new(&fixture.sdk),
        fixture.table.clone(),
        "prod".parse().map_err(anyhow::Error::msg)?,
    );
    let ttl = Duration::from_secs(300);

    // Eight runs race for a lock, 25 times over: exactly one wins each race (a store
    // whose conditional writes were not atomic lets two win now and then).
    for race in 0..25 {
        let claims = futures_join(&locks, &format!("race-{race}"), ttl).await?;
        let winners = claims
            .iter()
            .filter(|(_, c)| matches!(c, Claim::Acquired { .. }))
            .count();
        assert_eq!(winners, 1, "race {race}: {claims:?}");
    }
    // The last race, on the init lock: the others see who holds it.
    let claims = futures_join(&locks, "init", ttl).await?;
    let winners: Vec<&String> = claims
        .iter()
        .filter(|(_, c)| matches!(c, Claim::Acquired { .. }))
        .map(|(o, _)| o)
        .collect();
    assert_eq!(winners.len(), 1, "{claims:?}");
    let winner = winners[0].clone();
    for (owner, claim) in &claims {
        if *owner != winner {
            assert!(
                matches!(claim, Claim::HeldBy { owner: holder, .. } if *holder == winner),
                "{owner}: {claim:?}"
            );
        }
    }

    // Only the owner releases; the owner may claim again (extend); then anyone may.
    assert_eq!(
        locks.release("init", "someone-else").await?,
        Released::NotOwner
    );
    assert!(
        matches!(
            locks.claim("init", &winner, ttl).await?,
            Claim::Acquired { .. }
        ),
        "the owner extends its lock"
    );
    assert_eq!(locks.release("init", &winner).await?, Released::Released);
    assert_eq!(
        locks.release("init", &winner).await?,
        Released::NotOwner,
        "released twice"
    );
    assert!(matches!(
        locks.claim("init", "run-b", ttl).await?,
        Claim::Acquired { .. }
    ));

    // A lapsed lock (its owner died a while ago) is taken over.
    let lapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        - 60;
    aws_sdk_dynamodb::Client::new(&fixture.sdk)
        .put_item()
        .table_name(&fixture.table)
        .item("pk", AttributeValue::S("lock#prod".into()))
        .item("sk", AttributeValue::S("backup".into()))
        .item("owner", AttributeValue::S("dead-run".into()))
        .item("expires_at", AttributeValue::N(lapsed.to_string()))
        .send()
        .await?;
    assert!(
        matches!(
            locks.claim("backup", "live-run", ttl).await?,
            Claim::Acquired { .. }
        ),
        "a lapsed lock is free"
    );
    assert_eq!(
        locks.release("backup", "dead-run").await?,
        Released::NotOwner,
        "the dead run no longer owns it"
    );
    Ok(())
}

async fn futures_join(
    locks: &shared::aws::DynamoLocks,
    name: &str,
    ttl: Duration,
) -> Result<Vec<(String, shared::cluster::locks::Claim)>> {
    use shared::cluster::locks::Locks;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (locks, name) = (locks.clone(), name.to_owned());
        set.spawn(async move {
            let owner = format!("run-{i}");
            locks.claim(&name, &owner, ttl).await.map(|c| (owner, c))
        });
    }
    let mut claims = Vec::new();
    while let Some(joined) = set.join_next().await {
        claims.push(joined??);
    }
    Ok(claims)
}

#[tokio::test]
async fn lifecycle_actions_complete_once_and_a_redelivery_is_already_done() -> Result<()> {
    use aws_sdk_autoscaling::types::LifecycleState;
    use shared::{
        aws::AsgLifecycleActions,
        cluster::lifecycle_actions::{ActionOutcome, LifecycleActions, Verdict},
        events::{LifecycleAction, Transition},
    };
    let moto = Moto::shared().await?;
    let fixture = RegionFixture::create(moto, "eu-west-1", &unique_name("act")).await?;
    let ids = fixture.create_asg(2, true).await?;
    let actions = AsgLifecycleActions::new(aws_sdk_autoscaling::Client::new(&fixture.sdk));
    let pending: Vec<LifecycleAction> = moto
        .lifecycle_actions()
        .await?
        .into_iter()
        .filter(|a| a.group == fixture.asg)
        .map(|a| {
            let instance = a.instance_id.as_str().into();
            LifecycleAction::plain(a.group, a.hook, instance, a.token, Transition::Launching)
        })
        .collect();
    assert_eq!(pending.len(), 2);

    assert_eq!(actions.heartbeat(&pending[0]).await?, ActionOutcome::Done);
    assert_eq!(
        actions.complete(&pending[0], Verdict::Continue).await?,
        ActionOutcome::Done
    );
    assert_eq!(
        actions.complete(&pending[0], Verdict::Continue).await?,
        ActionOutcome::AlreadyDone,
        "a redelivered event"
    );
    assert_eq!(
        actions.heartbeat(&pending[0]).await?,
        ActionOutcome::AlreadyDone
    );
    assert_eq!(
        fixture.instances(Some(LifecycleState::InService)).await?,
        vec![pending[0].instance.to_string()]
    );

    assert_eq!(
        actions.complete(&pending[1], Verdict::Abandon).await?,
        ActionOutcome::Done
    );
    let remaining = fixture.instances(None).await?;
    assert!(
        !remaining.contains(&pending[1].instance.to_string()),
        "an abandoned launch leaves the group: {remaining:?}"
    );
    let recorded = moto.lifecycle_actions().await?;
    let results: Vec<Option<&str>> = pending
        .iter()
        .map(|p| {
            recorded
                .iter()
                .find(|r| r.token == p.token)
                .and_then(|r| r.result.as_deref())
        })
        .collect();
    assert_eq!(results, [Some("CONTINUE"), Some("ABANDON")]);
    assert_eq!(ids.len(), 2);
    Ok(())
}

#[tokio::test]
async fn a_stored_secret_is_never_overwritten() -> Result<()> {
    use shared::cluster::ports::Stored;
    let moto = Moto::shared().await?;
    let name = unique_name("share");
    let fixture = RegionFixture::create(moto, "eu-west-1", &name).await?;
    let parameters = SsmParameters::from_sdk(&fixture.sdk);
    let path = format!("/vault-lifecycle/{name}/unseal/share-1");
    let first = Secret::new("c2hhcmUtb25lLWNhbmFyeQ==");
    assert_eq!(
        parameters
            .put_new_secret(&path, &first, &fixture.kms_key)
            .await?,
        Stored::Written
    );
    let second = Secret::new("c2hhcmUtdHdvLWNhbmFyeQ==");
    assert_eq!(
        parameters
            .put_new_secret(&path, &second, &fixture.kms_key)
            .await?,
        Stored::AlreadyExists,
        "a re-run never replaces a share"
    );
    assert_eq!(parameters.secret(&path).await?, first);
    let described = aws_sdk_ssm::Client::new(&fixture.sdk)
        .get_parameter()
        .name(&path)
        .send()
        .await?;
    assert_eq!(
        described.parameter().and_then(|p| p.r#type()),
        Some(&aws_sdk_ssm::types::ParameterType::SecureString)
    );
    assert_ne!(
        described.parameter().and_then(|p| p.value()),
        Some(first.expose()),
        "stored encrypted, read back only with decryption"
    );
    Ok(())
}
