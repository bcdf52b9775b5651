//! dr-failover against two real OpenBao clusters (TLS) and moto in two regions: the
//! primary's backups copied to the DR region, the primary down, an alarm delivered, and
//! the warm standby serving the primary's data with the DNS record switched, the primary
//! group fenced and the operators notified; the same alarm in the other delivery forms
//! changes nothing, an OK alarm does nothing. A pilot-light standby (a group at 0) is
//! raised, initialised by its node-lifecycle and restored into. A drill proves a copy,
//! marks a corrupted one failed, and a failover then restores the copy before it.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use shared::{
    aws::{AsgCapacity, DynamoCatalog},
    backup::BackupOutcome,
    cluster::dr_ports::{DnsRecords, DnsTarget, GroupCapacity},
    failover::{
        record::{FailbackPhase, FailoverRecord, Phase},
        DeployedFailover, FailoverOutcome,
    },
    lifecycle::{
        records::{InitStage, StateRecords},
        unseal::Unsealed,
    },
    snapshots::{catalog::Catalog, store::Location},
    testing::capture_logs,
};
use testbed::dr::{sample, DrBed, Standby};
use tokio::time::Instant;

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// Sends `event` to `failover`.
async fn send(failover: &DeployedFailover, event: Value) -> Result<FailoverOutcome> {
    failover
        .handle(&event, "req", deadline())
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))
}

/// Before the outage, the dr-failover binary under the Lambda runtime emulator,
/// configured from its environment as the standby's stack sets it, answers the plan
/// sample with the DR copy (the primary healthy), refuses a failback with no failover to
/// return from and an alarm it is not configured for; nothing changes. Then the outage.
#[tokio::test]
async fn an_alarm_fails_the_primary_over_to_the_warm_standby_once() -> Result<()> {
    let logs = capture_logs();
    let mut dr = DrBed::start().await?;
    let entry = dr.backed_up("from-primary").await?;
    let canary = entry.canary.clone().context("the backup wrote a canary")?;
    let copy = entry.dr_copy.context("a DR copy")?;
    let printed = under_the_emulator(&dr, &copy).await?;
    untrusted_primary_is_not_down(&dr).await?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);

    // The plan first: it names the DR copy and changes nothing.
    let FailoverOutcome::Planned(plan) = send(&failover, sample("plan.json")?).await? else {
        bail!("expected a plan");
    };
    assert_eq!(plan.snapshot.map(|s| s.object), Some(copy.clone()));
    assert!(!plan.primary.healthy, "{:?}", plan.primary);
    assert!(plan.blocking.is_empty(), "{:?}", plan.blocking);
    assert_eq!(dr.primary_group().capacity().await?.desired, 1);

    let started = std::time::Instant::now();
    let outcome = send(&failover, sample("eventbridge-composite.json")?).await;
    let took = started.elapsed();
    let Ok(FailoverOutcome::FailedOver(record)) = &outcome else {
        bail!("expected a failover, got {outcome:?}");
    };
    eprintln!("failover from the alarm to DNS switched: {took:?}");
    assert_failed_over(&dr, record, &copy, "from-primary").await?;
    let verified = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Verified)
        .context("verified")?;
    assert!(
        verified.detail.contains(&canary),
        "the standby holds the snapshot's canary: {}",
        verified.detail
    );
    // SNS took the notification (what a topic receives is read back in the notifier's
    // contract test: moto's state dump fails once a test's buckets hold snapshots).
    assert_eq!(
        record.phases.last().map(|p| p.detail.as_str()),
        Some("the operators' topic was told")
    );

    // The same alarm in the other forms: nothing more. An OK alarm: nothing.
    for form in ["alarm-action-metric.json", "sns-metric.json"] {
        let again = send(&failover, sample(form)?).await?;
        assert!(
            matches!(again, FailoverOutcome::AlreadyFailedOver(_)),
            "{form}: {again:?}"
        );
    }
    let ok = send(&failover, sample("sns-ok.json")?).await?;
    assert!(matches!(ok, FailoverOutcome::Ignored { .. }), "{ok:?}");

    // The standby's credential-rotation, reading the primary's failover record where
    // the standby's stack keeps it: the shares and secret IDs wait for the failback.
    let mut rotation = dr.standby.rotation(&[])?;
    rotation.serving_for = Some(Box::new(shared::aws::DynamoStateRecords::from_sdk(
        &dr.primary.dr.sdk,
        dr.primary.dr.table.clone(),
        dr.primary.bed.cluster.parse().map_err(anyhow::Error::msg)?,
    )));
    let held = rotation
        .handle(
            &json!({"rotate": ["unseal-shares", "approle-secret-ids"], "force": true}),
            "standby-rotation",
            deadline(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.error_type, e.message))?;
    assert_eq!(held.held_for_failback.len(), 2, "{held:?}");
    assert!(held.unseal_shares.is_none() && held.approle_secret_ids.is_none());

    // After the forced restore, the standby's own login is refused by the primary's
    // data until the credentials are adopted: expected, said as such, not warned about.
    let logged = logs.contents();
    assert!(
        logged.contains("autopilot not read: the restored data is another cluster's"),
        "{logged}"
    );
    assert!(!logged.contains("autopilot could not be read"), "{logged}");
    dr.assert_no_secret_in(&[&logs.contents(), &format!("{outcome:?}"), &printed])
        .await?;
    Ok(())
}

/// A pilot-light standby: its group at 0, no node, never initialised. The alarm raises
/// the group to one instance; the test bed starts the instance's server and hands the
/// standby's node-lifecycle its launch event, as Auto Scaling would; node-lifecycle
/// initialises and bootstraps the standby; dr-failover restores the primary's copy into
/// it, and it serves the primary's data with DNS switched.
#[tokio::test]
async fn an_alarm_fails_the_primary_over_to_a_pilot_light_standby() -> Result<()> {
    let logs = capture_logs();
    let mut dr = DrBed::start_with(Standby::PilotLight).await?;
    let standby_group = dr.standby.bed.region.instances(None).await?;
    assert!(standby_group.is_empty(), "{standby_group:?}");
    let init = testbed::lifecycle::records(&dr.standby.bed)?.init().await?;
    assert!(init.is_none(), "{init:?}");
    let copy = dr
        .backed_up("from-primary")
        .await?
        .dr_copy
        .context("a DR copy")?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);

    let event = sample("eventbridge-composite.json")?;
    let (outcome, launched) = tokio::join!(
        send(&failover, event),
        dr.launch_standby(Duration::from_secs(120))
    );
    let Ok(FailoverOutcome::FailedOver(record)) = &outcome else {
        bail!("expected a failover, got {outcome:?} (the launcher: {launched:?})");
    };
    let launched = launched?;
    eprintln!("launcher: {launched:?}");
    assert_failed_over(&dr, record, &copy, "from-primary").await?;
    let [instance] = launched.instances.as_slice() else {
        bail!("expected one instance launched: {launched:?}");
    };
    let [launch] = launched.launches.as_slice() else {
        bail!("expected one launch: {launched:?}");
    };
    assert!(launch.initialised_cluster, "{launch:?}");
    let standby_up = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::StandbyUp)
        .context("standby-up")?;
    assert_eq!(
        standby_up.detail,
        format!("node {instance} active (started from 0)")
    );
    assert_eq!(
        record.standby_group_was.map(|c| c.desired),
        Some(0),
        "a failback gives the group its 0 back"
    );
    let init = testbed::lifecycle::records(&dr.standby.bed)?.init().await?;
    assert_eq!(
        init.map(|r| (r.node.to_string(), r.stage)),
        Some((instance.clone(), InitStage::Bootstrapped))
    );

    dr.assert_no_secret_in(&[&logs.contents(), &format!("{outcome:?}")])
        .await?;
    Ok(())
}

/// A pilot light used twice: a drill raises it from 0 (the standby's node-lifecycle
/// initialises its cluster in the new node, the copy is restored and proven) and gives
/// the group its 0 back; an alarm raises it again, and the new node, left uninitialised
/// by the standby's node-lifecycle (its cluster has no node left), gets the standby's
/// cluster rebuilt in it from the primary's copy: it serves the primary's data with DNS
/// switched.
#[tokio::test]
async fn a_pilot_light_back_at_0_after_a_drill_is_rebuilt_by_the_failover() -> Result<()> {
    let logs = capture_logs();
    let mut dr = DrBed::start_with(Standby::PilotLight).await?;
    let copy = dr
        .backed_up("from-primary")
        .await?
        .dr_copy
        .context("a DR copy")?;
    let failover = dr.failover()?;
    let (drilled, first) = tokio::join!(
        send(&failover, json!({"action": "drill"})),
        dr.launch_standby(Duration::from_secs(120))
    );
    let Ok(FailoverOutcome::Drilled(drilled)) = &drilled else {
        bail!("expected a drill, got {drilled:?} (the launcher: {first:?})");
    };
    assert!(drilled.passed, "{drilled:?}");
    let first = first?;
    assert!(first.launches[0].initialised_cluster, "{first:?}");
    let standby_group = AsgCapacity::from_sdk(
        &dr.standby.bed.region.sdk,
        dr.standby.bed.region.asg.clone(),
    );
    assert_eq!(
        standby_group.capacity().await?.desired,
        0,
        "a pilot light again"
    );
    // Auto Scaling terminates the drilled instance: its server and data go with it.
    dr.standby.bed.bao.kill(0);

    dr.primary.bed.bao.kill(0);
    let (outcome, second) = tokio::join!(
        send(&failover, sample("eventbridge-composite.json")?),
        dr.launch_standby(Duration::from_secs(120))
    );
    let Ok(FailoverOutcome::FailedOver(record)) = &outcome else {
        bail!("expected a failover, got {outcome:?} (the launcher: {second:?})");
    };
    let second = second?;
    for phase in &record.phases {
        eprintln!("  {} {} ms: {}", phase.phase, phase.took_ms, phase.detail);
    }
    assert_eq!(
        second.launches[0].unsealed,
        Unsealed::LeftForRebuild,
        "{second:?}"
    );
    assert!(record.standby_rebuild);
    assert_eq!(
        record.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
        Phase::ALL
    );
    assert_eq!(record.snapshot, copy);
    let detail = |phase: Phase| record.detail(phase).unwrap_or_default().to_owned();
    assert!(
        detail(Phase::Restored).contains("rebuilt in its new node"),
        "{}",
        detail(Phase::Restored)
    );
    assert!(
        detail(Phase::Verified).contains(record.snapshot_canary.as_deref().unwrap_or("?")),
        "{}",
        detail(Phase::Verified)
    );
    // The new instance's server (the second the test bed started) serves the
    // primary's data, read with the primary's root token.
    let (status, body) = dr
        .standby_api(1, reqwest::Method::GET, "kv/app", None)
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["value"], "from-primary");
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-dr.example.com", 60)?)
    );
    dr.assert_no_secret_in(&[&logs.contents(), &format!("{outcome:?}")])
        .await?;
    Ok(())
}

/// A failback's rebuild cut off between `sys/init` and the send leaves a node sealed
/// with throwaway keys nobody holds (played here by initialising the new node by hand).
/// The next failback refuses by name (`RebuildKeysLost`), sends nothing, and leaves the
/// DR cluster serving: the data is safe there.
#[tokio::test]
async fn a_rebuild_whose_throwaway_keys_are_lost_is_refused_and_changes_nothing() -> Result<()> {
    let mut dr = DrBed::start().await?;
    dr.backed_up("before the outage").await?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);
    let FailoverOutcome::FailedOver(_) = send(&failover, sample("sns-metric.json")?).await? else {
        bail!("expected a failover");
    };
    let first = send(&failover, json!({"action": "failback"})).await;
    assert!(first.is_err(), "waits for the new node: {first:?}");
    let launched = dr.launch_primary(Duration::from_secs(60)).await?;
    assert_eq!(launched.unsealed, Unsealed::LeftForRebuild);
    let node = dr.primary.bed.bao.index_of(launched.instance.as_str())?;
    dr.primary.bed.bao.init(node, 5, 3).await?;

    let refused = send(&failover, json!({"action": "failback"})).await;
    assert!(
        refused.as_ref().is_err_and(|e| {
            let text = e.to_string();
            text.contains("RebuildKeysLost")
                && text.contains(launched.instance.as_str())
                && text.contains("terminate the instance")
        }),
        "{refused:?}"
    );
    assert_eq!(
        dr.primary.bed.bao.health_code(node).await?,
        503,
        "still sealed: nothing was sent"
    );
    let record = dr.failover_record().await?.context("kept")?;
    let failback = record.failback.context("recorded")?;
    assert!(failback
        .detail(FailbackPhase::RestoredIntoPrimary)
        .is_none());
    assert!(failback
        .failed
        .is_some_and(|f| f.contains("RebuildKeysLost")));
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-dr.example.com", 60)?),
        "the DR cluster still serves"
    );
    assert_eq!(dr.standby_kv().await?.as_deref(), Some("before the outage"));
    Ok(())
}

/// A region outage took the primary's nodes while its Auto Scaling API did not answer:
/// the fence was only recorded. The failback refuses while a member does not answer
/// (`PrimaryNotServing`, nothing recorded); once an operator has emptied the group and
/// asks with `"rebuild": true`, the primary is rebuilt in one new node from the DR
/// cluster's snapshot, and the group (at 0 when asked) keeps that node, said so.
#[tokio::test]
async fn a_failback_rebuilds_a_primary_that_lost_its_nodes_when_the_operator_says_so() -> Result<()>
{
    let mut dr = DrBed::start().await?;
    dr.backed_up("before the outage").await?;
    let failover = dr.failover_in_an_outage()?;
    dr.primary.bed.bao.kill(0);
    let FailoverOutcome::FailedOver(record) = send(&failover, sample("sns-metric.json")?).await?
    else {
        bail!("expected a failover");
    };
    assert!(
        record.primary_group_was.is_none(),
        "fenced by the record only"
    );
    dr.standby_write("written in the DR region").await?;

    // The region is back; the primary's instance is still in its group, and answers
    // nothing: it may come back with its data, so nothing is rebuilt on the
    // function's own judgement.
    let failover = dr.failover()?;
    let refused = send(&failover, json!({"action": "failback"})).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PrimaryNotServing")),
        "{refused:?}"
    );
    // The operator knows the nodes are gone: the group emptied, the rebuild asked for.
    dr.primary_group().resize(0, 0).await?;
    let first = send(&failover, sample("failback-rebuild.json")?).await;
    assert!(
        first.as_ref().is_err_and(
            |e| e.to_string().contains("PrimaryServing") && e.to_string().contains("one node")
        ),
        "{first:?}"
    );
    let launched = dr.launch_primary(Duration::from_secs(60)).await?;
    assert_eq!(launched.unsealed, Unsealed::LeftForRebuild, "{launched:?}");
    let outcome = send(&failover, json!({"action": "failback"})).await?;
    let FailoverOutcome::FailedBack(record) = outcome else {
        bail!("expected a failback, got {outcome:?}");
    };
    let failback = record.failback.as_ref().context("the failback's record")?;
    assert!(failback.rebuild);
    let unfenced = failback.detail(FailbackPhase::Unfenced).unwrap_or_default();
    assert!(unfenced.contains("by hand"), "{unfenced}");
    assert_eq!(dr.primary_group().capacity().await?.desired, 1);
    assert_eq!(
        dr.primary.kv("app").await?.as_deref(),
        Some("written in the DR region")
    );
    Ok(())
}

/// An auto-unseal primary (transit seal; recovery shares in the DR region) and a warm
/// standby that auto-unseals with the same key (in AWS: the primary's KMS key's replica
/// in the DR region): the alarm fails the primary over, the restored standby unseals by
/// itself, adopts the primary's recovery shares and credentials, and serves its data.
/// Then the failback rebuilds the primary, whose group the fence emptied, in a new node
/// that is initialised with recovery shares and opens by itself after the restore: the
/// DR region's writes are in the primary.
#[tokio::test]
async fn an_auto_unseal_primary_fails_over_to_a_standby_with_its_seal_and_back() -> Result<()> {
    let logs = capture_logs();
    let mut dr = DrBed::start_auto_unseal(true).await?;
    let copy = dr
        .backed_up("from-primary")
        .await?
        .dr_copy
        .context("a DR copy")?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);
    let outcome = send(&failover, sample("sns-metric.json")?).await;
    let Ok(FailoverOutcome::FailedOver(record)) = &outcome else {
        bail!("expected a failover, got {outcome:?}");
    };
    assert_failed_over(&dr, record, &copy, "from-primary").await?;
    let adopted = &record.phases[4];
    assert!(
        adopted.detail.contains("recovery shares"),
        "{}",
        adopted.detail
    );

    dr.standby_write("written in the DR region").await?;
    let first = send(&failover, json!({"action": "failback"})).await;
    assert!(
        first
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PrimaryServing")),
        "{first:?}"
    );
    let launched = dr.launch_primary(Duration::from_secs(60)).await?;
    assert_eq!(launched.unsealed, Unsealed::LeftForRebuild, "{launched:?}");
    let back = send(&failover, json!({"action": "failback"})).await;
    let Ok(FailoverOutcome::FailedBack(back_record)) = &back else {
        bail!("expected a failback, got {back:?}");
    };
    for phase in back_record.failback.iter().flat_map(|f| f.phases.iter()) {
        eprintln!("  {:?} {} ms: {}", phase.phase, phase.took_ms, phase.detail);
    }
    assert_eq!(
        dr.primary.kv("app").await?.as_deref(),
        Some("written in the DR region")
    );
    dr.assert_no_secret_in(&[
        &logs.contents(),
        &format!("{outcome:?}"),
        &format!("{back:?}"),
    ])
    .await?;
    Ok(())
}

/// An auto-unseal primary and a Shamir standby: its snapshot could not be unsealed
/// there. The alarm is refused by name (`AutoUnsealPrimary`) before anything changes:
/// no record, the primary's group untouched, DNS as it was.
#[tokio::test]
async fn an_auto_unseal_primary_is_not_failed_over_to_a_shamir_standby() -> Result<()> {
    let mut dr = DrBed::start_auto_unseal(false).await?;
    dr.backed_up("from-primary").await?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);
    let outcome = send(&failover, sample("sns-metric.json")?).await;
    assert!(
        outcome
            .as_ref()
            .is_err_and(|e| e.to_string().contains("AutoUnsealPrimary")),
        "{outcome:?}"
    );
    let group = dr.primary_group().capacity().await?;
    assert_eq!(group.desired, 1, "not fenced");
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-primary.example.com", 60)?)
    );
    assert_eq!(dr.standby_kv().await?, None, "nothing restored");
    Ok(())
}

/// What a failover run to its end leaves: every phase recorded, in order; `copy`
/// restored; the standby serving `value` at `kv/app`; the record pointing at the DR
/// cluster; the primary's group fenced at 0.
async fn assert_failed_over(
    dr: &DrBed,
    record: &FailoverRecord,
    copy: &Location,
    value: &str,
) -> Result<()> {
    for phase in &record.phases {
        eprintln!("  {} {} ms: {}", phase.phase, phase.took_ms, phase.detail);
    }
    assert_eq!(
        record.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
        Phase::ALL
    );
    assert_eq!(&record.snapshot, copy);
    assert_eq!(dr.standby_kv().await?.as_deref(), Some(value));
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-dr.example.com", 60)?)
    );
    let fenced = dr.primary_group().capacity().await?;
    assert_eq!((fenced.min, fenced.desired), (0, 0));
    Ok(())
}

/// With a CA bundle that trusts only the standby, the running primary's certificate is
/// untrusted: never taken for "down". The plan says so, an alarm is refused, nothing is
/// fenced.
async fn untrusted_primary_is_not_down(dr: &DrBed) -> Result<()> {
    let mut env = dr.failover_env()?;
    env.retain(|(k, _)| k != "VAULT_CACERT_PEM");
    env.push((
        "VAULT_CACERT_PEM".to_owned(),
        dr.standby.bed.bao.ca.ca_pem.clone(),
    ));
    let env = shared::config::Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let failover = shared::failover::from_sdk(
        &dr.primary.dr.sdk,
        shared::failover::FailoverConfig::from(&env)?,
    )?;
    let FailoverOutcome::Planned(plan) = send(&failover, sample("plan.json")?).await? else {
        bail!("expected a plan");
    };
    assert!(
        plan.primary.untrusted && !plan.primary.healthy,
        "{:?}",
        plan.primary
    );
    assert!(
        plan.blocking.iter().any(|b| b.contains("VAULT_CACERT_PEM")),
        "{:?}",
        plan.blocking
    );
    let refused = send(&failover, sample("eventbridge-composite.json")?).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PrimaryUnverifiable")),
        "{refused:?}"
    );
    assert_eq!(
        dr.primary_group().capacity().await?.desired,
        1,
        "nothing fenced"
    );
    Ok(())
}

/// The binary's checks before the outage; what it printed.
async fn under_the_emulator(dr: &DrBed, copy: &Location) -> Result<String> {
    let mut emulator = testbed::lambda::LambdaEmulator::start(&dr.failover_env()?).await?;
    let timeout = Duration::from_secs(120);
    let testbed::lambda::Invocation::Ok(plan) = emulator
        .invoke("dr-failover", "dr-failover/plan.json", timeout)
        .await?
    else {
        bail!("plan.json failed; emulator output:\n{}", emulator.output());
    };
    assert_eq!(plan["outcome"], "planned", "{plan}");
    assert_eq!(
        plan["snapshot"]["object"]["key"],
        copy.key.as_str(),
        "{plan}"
    );
    assert_eq!(plan["primary"]["healthy"], true, "the primary runs: {plan}");
    for (sample, error_type) in [
        (
            "dr-failover/failback.json",
            "Permanent.NoFailoverToReturnFrom",
        ),
        (
            "dr-failover/alarm-action-anomaly.json",
            "Permanent.UnknownAlarm",
        ),
    ] {
        let answer = emulator.invoke("dr-failover", sample, timeout).await?;
        let testbed::lambda::Invocation::Err(text) = &answer else {
            bail!("{sample}: expected an error, got {answer:?}");
        };
        assert!(text.contains(error_type), "{sample}: {text}");
    }
    assert_eq!(
        dr.primary_group().capacity().await?.desired,
        1,
        "nothing fenced"
    );
    Ok(emulator.output())
}

/// Makes `copy`'s bytes no longer match its DR catalog entry (as if the object had
/// rotted); the DR catalog and the primary's name, to read the entries back.
async fn corrupt_in_dr_catalog(
    dr: &DrBed,
    copy: &Location,
) -> Result<(DynamoCatalog, shared::ids::ClusterName)> {
    let catalog = DynamoCatalog::from_sdk(&dr.primary.dr.sdk, dr.primary.dr.table.clone());
    let cluster: shared::ids::ClusterName = dr
        .primary
        .bed
        .cluster
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))?;
    let mut entry = catalog
        .entries(&cluster)
        .await?
        .into_iter()
        .find(|e| e.object == *copy)
        .context("the copy's entry")?;
    entry.sha256 = "0".repeat(64);
    catalog.put(&entry).await?;
    Ok((catalog, cluster))
}

#[tokio::test]
async fn a_corrupted_copy_fails_its_drill_and_the_failover_restores_the_copy_before_it(
) -> Result<()> {
    let mut dr = DrBed::start().await?;
    let older = dr.backed_up("older").await?.dr_copy.context("a DR copy")?;
    let newer = dr.backed_up("newer").await?.dr_copy.context("a DR copy")?;
    let failover = dr.failover()?;

    // The newer copy's bytes no longer match its catalog entry (as if the object had
    // rotted): its drill fails, and it is marked so.
    let (catalog, cluster) = corrupt_in_dr_catalog(&dr, &newer).await?;
    let FailoverOutcome::Drilled(drilled) = send(&failover, json!({"action": "drill"})).await?
    else {
        bail!("expected a drill");
    };
    assert_eq!(drilled.snapshot, newer);
    assert!(!drilled.passed, "{drilled:?}");
    assert!(
        drilled.detail.contains("ChecksumMismatch"),
        "{}",
        drilled.detail
    );

    // The next drill proves the older copy (and restores it into the standby).
    let FailoverOutcome::Drilled(drilled) = send(&failover, json!({"action": "drill"})).await?
    else {
        bail!("expected a drill");
    };
    assert_eq!(drilled.snapshot, older);
    assert!(drilled.passed, "{drilled:?}");
    assert!(drilled.last_proven_age_seconds.is_some());
    let marks: Vec<(bool, bool)> = catalog
        .entries(&cluster)
        .await?
        .iter()
        .filter(|e| e.object == older || e.object == newer)
        .map(|e| (e.drill_proven(), e.drill_failed()))
        .collect();
    assert_eq!(
        marks,
        [(true, false), (false, true)],
        "older proven, newer failed"
    );

    // A failover now restores the older copy, not the corrupted newer one.
    dr.primary.bed.bao.kill(0);
    let outcome = send(&failover, sample("alarm-action-composite.json")?).await?;
    let FailoverOutcome::FailedOver(record) = outcome else {
        bail!("expected a failover, got {outcome:?}");
    };
    assert_eq!(record.snapshot, older);
    assert_eq!(dr.standby_kv().await?.as_deref(), Some("older"));
    Ok(())
}

/// A copy corrupted since it was catalogued, never drilled: the failover finds it
/// before sending anything, marks it failed and restores the copy before it, in the
/// same run.
#[tokio::test]
async fn a_failover_sets_a_corrupted_undrilled_copy_aside_and_restores_the_one_before() -> Result<()>
{
    let mut dr = DrBed::start().await?;
    let older = dr.backed_up("older").await?.dr_copy.context("a DR copy")?;
    let newer = dr.backed_up("newer").await?.dr_copy.context("a DR copy")?;
    let failover = dr.failover()?;
    let (catalog, cluster) = corrupt_in_dr_catalog(&dr, &newer).await?;

    dr.primary.bed.bao.kill(0);
    let outcome = send(&failover, sample("sns-metric.json")?).await?;
    let FailoverOutcome::FailedOver(record) = outcome else {
        bail!("expected a failover, got {outcome:?}");
    };
    assert_eq!(record.snapshot, older);
    assert_eq!(dr.standby_kv().await?.as_deref(), Some("older"));
    let restored = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Restored)
        .context("restored")?;
    assert!(
        restored.detail.contains("set aside") && restored.detail.contains("ChecksumMismatch"),
        "{}",
        restored.detail
    );
    let newer_entry = catalog
        .entries(&cluster)
        .await?
        .into_iter()
        .find(|e| e.object == newer)
        .context("the newer copy's entry")?;
    assert!(newer_entry.drill_failed(), "{newer_entry:?}");
    Ok(())
}

/// A region outage whose fence can only be recorded (the primary region's Auto Scaling
/// API does not answer), a failover, data written in the DR region, the primary's node
/// back (sealed, and left sealed by its node-lifecycle while fenced), then a failback:
/// the DR cluster's data in the primary, DNS pointed back, the record archived.
#[tokio::test]
async fn a_failback_brings_the_dr_regions_writes_back_to_the_primary() -> Result<()> {
    let mut dr = DrBed::start().await?;
    dr.backed_up("before the outage").await?;
    // Writes after the last backup, lost with the primary region: they put the
    // primary's own Raft index past the snapshot of the DR cluster a failback takes,
    // which must not pass for the primary already holding it.
    for n in 0..200 {
        dr.primary
            .write("kv/after-the-backup", json!({ "value": n }))
            .await?;
    }
    let failover = dr.failover_in_an_outage()?;
    dr.primary.bed.bao.kill(0);
    let FailoverOutcome::FailedOver(record) = send(&failover, sample("sns-metric.json")?).await?
    else {
        bail!("expected a failover");
    };
    let fenced = &record.phases[1];
    assert!(
        fenced.detail.contains("recorded fenced only"),
        "{}",
        fenced.detail
    );
    dr.standby_write("written in the DR region").await?;

    // The primary region is back, its node restarted sealed. The DR region fenced it:
    // its node-lifecycle leaves it sealed (it would take writes the failback replaces),
    // and its other functions neither back it up (nor copy to the DR region) nor rotate
    // its credentials until the failback.
    let reconciled = dr.primary_back().await?;
    assert!(
        reconciled.fenced.is_some() && reconciled.unsealed.is_empty(),
        "{reconciled:?}"
    );
    assert_eq!(
        dr.primary.bed.bao.health_code(0).await?,
        503,
        "still sealed"
    );
    let backup = dr
        .primary
        .backup(&[])?
        .handle(
            &json!({"reason": "while fenced"}),
            "while-fenced",
            deadline(),
        )
        .await;
    assert!(matches!(backup, Ok(BackupOutcome::Fenced(_))), "{backup:?}");
    let rotation = dr
        .primary
        .rotation(&[])?
        .handle(
            &json!({"rotate": ["keyring"], "force": true}),
            "while-fenced",
            deadline(),
        )
        .await;
    assert!(
        rotation
            .as_ref()
            .is_ok_and(|r| r.fenced.is_some() && r.keyring.is_none()),
        "{rotation:?}"
    );

    // The failback is asked for: recorded, and refused until the primary serves.
    let first = send(&failover, json!({"action": "failback"})).await;
    assert!(
        first
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PrimaryServing")),
        "{first:?}"
    );
    // Its node-lifecycle reads that and unseals it at the next reconcile.
    dr.primary_unsealed().await?;
    let outcome = send(&failover, json!({"action": "failback"})).await?;
    let FailoverOutcome::FailedBack(record) = outcome else {
        bail!("expected a failback, got {outcome:?}");
    };
    let failback = record.failback.as_ref().context("the failback's record")?;
    for phase in &failback.phases {
        eprintln!("  {:?} {} ms: {}", phase.phase, phase.took_ms, phase.detail);
    }
    let snapshot_canary = failback
        .snapshot
        .as_ref()
        .and_then(|s| s.canary.clone())
        .context("the DR cluster's snapshot carries a canary")?;
    let detail = |phase: FailbackPhase| failback.detail(phase).unwrap_or_default().to_owned();
    let restored = detail(FailbackPhase::RestoredIntoPrimary);
    assert!(!restored.starts_with("already"), "{restored}");
    let verified = detail(FailbackPhase::PrimaryVerified);
    assert!(verified.contains(&snapshot_canary), "{verified}");
    assert_eq!(
        dr.primary.kv("app").await?.as_deref(),
        Some("written in the DR region"),
        "the primary holds what was written in the DR region"
    );
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-primary.example.com", 60)?)
    );
    // The failback archived the record: the primary backs itself up again.
    let backup = dr
        .primary
        .backup(&[])?
        .handle(
            &json!({"reason": "after the failback"}),
            "after",
            deadline(),
        )
        .await;
    assert!(
        matches!(backup, Ok(BackupOutcome::BackedUp(_))),
        "{backup:?}"
    );
    // Archived: the same alarm now starts a new failover instead of answering
    // already_failed_over (its probes find the primary healthy and refuse).
    let again = send(&failover, sample("sns-metric.json")?).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PrimaryHealthy")),
        "{again:?}"
    );
    Ok(())
}

/// A failover whose fence emptied the primary's group (its Auto Scaling API answered),
/// then a failback: recorded as a rebuild, the group given one node, which the primary's
/// node-lifecycle leaves uninitialised (the fence and the failback read from the DR
/// table); the next failback initialises it with throwaway keys, forces the DR
/// cluster's snapshot into it and unseals it with the DR cluster's shares (the
/// primary's own): the primary serves the DR region's writes with its own root token
/// and credentials, DNS points back, and the logs hold no share or token.
#[tokio::test]
async fn a_failback_rebuilds_the_primary_whose_group_the_fence_emptied() -> Result<()> {
    let logs = capture_logs();
    let mut dr = DrBed::start().await?;
    dr.backed_up("before the outage").await?;
    let failover = dr.failover()?;
    dr.primary.bed.bao.kill(0);
    let FailoverOutcome::FailedOver(record) = send(&failover, sample("sns-metric.json")?).await?
    else {
        bail!("expected a failover");
    };
    let fenced = &record.phases[1];
    assert!(fenced.detail.contains("scaled to 0"), "{}", fenced.detail);
    dr.standby_write("written in the DR region").await?;

    // Asked for: recorded as a rebuild, the group given one node, refused until that
    // node is in service.
    let first = send(&failover, json!({"action": "failback"})).await;
    assert!(
        first.as_ref().is_err_and(
            |e| e.to_string().contains("PrimaryServing") && e.to_string().contains("one node")
        ),
        "{first:?}"
    );
    assert_eq!(dr.primary_group().capacity().await?.desired, 1);
    let launched = dr.launch_primary(Duration::from_secs(60)).await?;
    assert_eq!(launched.unsealed, Unsealed::LeftForRebuild, "{launched:?}");
    assert!(!launched.initialised_cluster && !launched.joined);
    let started = Instant::now();
    let outcome = send(&failover, json!({"action": "failback"})).await;
    eprintln!("failback with a rebuild: {:?}", started.elapsed());
    let FailoverOutcome::FailedBack(record) = outcome? else {
        bail!("expected a failback");
    };
    let failback = record.failback.as_ref().context("the failback's record")?;
    assert!(failback.rebuild);
    for phase in &failback.phases {
        eprintln!("  {:?} {} ms: {}", phase.phase, phase.took_ms, phase.detail);
    }
    let detail = |phase: FailbackPhase| failback.detail(phase).unwrap_or_default().to_owned();
    let restored = detail(FailbackPhase::RestoredIntoPrimary);
    assert!(
        restored.contains("a new node of the emptied primary"),
        "{restored}"
    );
    let snapshot_canary = failback
        .snapshot
        .as_ref()
        .and_then(|s| s.canary.clone())
        .context("the DR cluster's snapshot carries a canary")?;
    let verified = detail(FailbackPhase::PrimaryVerified);
    assert!(verified.contains(&snapshot_canary), "{verified}");
    // The primary's root token is valid again: the data is its own, back from the DR
    // region with what was written there.
    assert_eq!(
        dr.primary.kv("app").await?.as_deref(),
        Some("written in the DR region")
    );
    assert_eq!(
        dr.records.current().await?,
        Some(DnsTarget::cname("vault-primary.example.com", 60)?)
    );
    // Its own node-lifecycle reconciles it as before the outage.
    let reconciled = dr.primary_lifecycle()?.reconcile(deadline()).await?;
    assert!(reconciled.fenced.is_none(), "{reconciled:?}");
    assert!(reconciled.not_peers.is_empty(), "{reconciled:?}");
    dr.assert_no_secret_in(&[&logs.contents(), &format!("{record:?}")])
        .await?;
    Ok(())
}

/// After a failover to a standby of two (`STANDBY_SIZE=2`), the instance `scaled` asked
/// for is brought in by the standby's node-lifecycle with what the failover adopted: it
/// joins the restored node, unseals with the primary's shares (the standby's newest
/// generation now), logs in with the primary's node-lifecycle credentials to wait for
/// autopilot, and becomes a voter; the primary's data is read through it.
#[tokio::test]
async fn the_node_scaled_after_a_failover_joins_with_the_adopted_shares_and_credentials(
) -> Result<()> {
    let mut dr = DrBed::start().await?;
    dr.backed_up("before the outage").await?;
    let mut failover = dr.failover()?;
    failover.settings.standby_size = 2;
    dr.primary.bed.bao.kill(0);
    let FailoverOutcome::FailedOver(record) =
        send(&failover, sample("eventbridge-composite.json")?).await?
    else {
        bail!("expected a failover");
    };
    let scaled = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Scaled)
        .context("scaled")?;
    assert!(scaled.detail.contains("1 -> 2"), "{}", scaled.detail);

    let launches = dr.launch_scaled_standby(1, Duration::from_secs(60)).await?;
    let [report] = launches.as_slice() else {
        bail!("expected one launch, got {launches:?}");
    };
    assert!(report.joined && !report.initialised_cluster, "{report:?}");
    // Unsealed with shares, which only the primary's (the adopted generation) open.
    assert_eq!(report.unsealed, Unsealed::WithShares, "{report:?}");
    assert!(report.completed_now, "{report:?}");
    // Two voters in the Raft configuration, read with the primary's root token (the
    // standby holds the primary's data and tokens now).
    let (status, config) = dr
        .standby_api(
            0,
            reqwest::Method::GET,
            "sys/storage/raft/configuration",
            None,
        )
        .await?;
    let voters = config["data"]["config"]["servers"]
        .as_array()
        .map(|servers| servers.iter().filter(|s| s["voter"] == true).count());
    assert_eq!((status, voters), (200, Some(2)), "{config}");
    // The primary's data, read through the new node (a standby forwards to the active).
    let (status, body) = dr
        .standby_api(1, reqwest::Method::GET, "kv/app", None)
        .await?;
    assert_eq!(
        (status, body["data"]["value"].as_str()),
        (200, Some("before the outage")),
        "{body}"
    );
    Ok(())
}
