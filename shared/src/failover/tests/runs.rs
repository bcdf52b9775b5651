//! Failover runs: from an alarm to the DR cluster serving, repeated alarms, an OK alarm,
//! refusals that change nothing, cut-offs resumed, the plan, and a pilot light's node
//! taken as up only once its launch completed.

use std::sync::atomic::Ordering;

use super::*;
use crate::testing::capture_logs;

#[tokio::test(start_paused = true)]
async fn an_alarm_fails_over_once_through_every_phase_and_a_repeat_changes_nothing() {
    let logs = capture_logs();
    let bed = Bed::down();
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(
        record.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
        Phase::ALL,
        "every phase, in order"
    );
    assert_eq!(record.snapshot, dr_copy(1, 60).object, "the newest DR copy");
    // The primary fenced, its size kept; the standby restored, scaled and serving.
    assert_eq!(bed.primary_group.now().desired, 0);
    assert_eq!(bed.primary_group.now().min, 0);
    assert_eq!(record.primary_group_was.map(|c| c.desired), Some(3));
    assert_eq!(bed.restored(), [dr_copy(1, 60).object]);
    assert_eq!(bed.standby.state().cluster_id, "c-primary");
    assert_eq!(bed.standby_group.now().desired, 3);
    assert!(bed.dns_points_at_dr());
    let sent = bed.notifier.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].message.contains("restored"), "{}", sent[0].message);
    // The standby's own parameters hold the primary's shares as a new generation in force.
    let standby_keys = KeyLayout::new("/vault-lifecycle", "prod-dr");
    let generations =
        crate::keys::generations(&bed.failover.parameters, &standby_keys, ShareKind::Unseal)
            .await
            .expect("read");
    assert_eq!(generations.in_force, 2);
    let adopted = crate::keys::read_shares(
        &bed.failover.parameters,
        &standby_keys,
        (ShareKind::Unseal, 2),
        5,
        5,
    )
    .await
    .expect("adopted");
    assert_eq!(
        adopted
            .iter()
            .map(|s| s.expose().to_owned())
            .collect::<Vec<_>>(),
        primary_shares()
    );

    // The same alarm again, and through SNS: one failover.
    let again = bed.send(alarm(ALARM, "ALARM")).await.expect("an answer");
    assert!(
        matches!(again, FailoverOutcome::AlreadyFailedOver(_)),
        "{again:?}"
    );
    assert_eq!(bed.restored().len(), 1);
    assert_eq!(bed.notifier.sent().len(), 1);
    for share in primary_shares() {
        assert!(
            !logs.contents().contains(&share),
            "a share leaked into the logs"
        );
        assert!(!format!("{again:?}").contains(&share));
    }
}

#[tokio::test(start_paused = true)]
async fn an_ok_alarm_does_nothing_and_an_unknown_alarm_is_refused() {
    let bed = Bed::down();
    let outcome = bed.send(alarm(ALARM, "OK")).await.expect("an answer");
    assert!(
        matches!(outcome, FailoverOutcome::Ignored { .. }),
        "{outcome:?}"
    );
    let error = bed
        .send(alarm("someone-elses-alarm", "ALARM"))
        .await
        .expect_err("not ours");
    assert_eq!(error.error_type, "Permanent.UnknownAlarm");
    assert!(
        error.message.contains("someone-elses-alarm"),
        "{}",
        error.message
    );
    assert_eq!(bed.record(), None, "nothing recorded");
    assert_eq!(bed.primary_group.now().desired, 3, "nothing fenced");
    assert!(bed.restored().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_healthy_primary_is_not_failed_over_unless_an_operator_forces_it() {
    let bed = Bed::with(FakePrimary::healthy());
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("the primary answers");
    assert_eq!(error.error_type, "Permanent.PrimaryHealthy");
    assert_eq!(bed.record(), None);
    assert_eq!(bed.primary_group.now().desired, 3);
    let error = bed
        .send(json!({"action": "failover", "reason": "drill"}))
        .await
        .expect_err("not forced");
    assert_eq!(error.error_type, "Permanent.PrimaryHealthy");

    let outcome = bed
        .send(json!({"action": "failover", "reason": "planned move", "force": true}))
        .await
        .expect("forced");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(record.trigger.contains("forced"), "{}", record.trigger);
    assert!(bed.dns_points_at_dr());
}

#[tokio::test(start_paused = true)]
async fn a_failed_restore_unfences_the_primary_and_a_rerun_completes() {
    let bed = Bed::down();
    bed.restores.fail_next.store(1, Ordering::SeqCst);
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("the restore fails");
    assert_eq!(error.error_type, "Transient.FailoverPhaseFailed");
    assert!(error.message.contains("restored"), "{}", error.message);
    let record = bed.record().expect("recorded");
    let failed = record.failed.clone().expect("the failure recorded");
    assert_eq!((failed.phase, failed.unfenced), (Phase::Restored, true));
    assert_eq!(
        bed.primary_group.now().desired,
        3,
        "the primary has its size back"
    );
    assert_eq!(record.last_phase(), Some(Phase::Confirmed), "rewound");
    assert!(!bed.dns_points_at_dr());

    // The next delivery of the alarm resumes: fenced again, restored once, done.
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("resumed");
    assert!(
        matches!(outcome, FailoverOutcome::FailedOver(_)),
        "{outcome:?}"
    );
    assert_eq!(bed.restored().len(), 1);
    assert_eq!(bed.primary_group.now().desired, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_dr_side_serves_keeps_the_primary_fenced_and_resumes_without_restoring_again(
) {
    let bed = Bed::down();
    bed.dns.fail_next.store(true, Ordering::SeqCst);
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("the DNS change fails");
    assert!(error.message.contains("switched"), "{}", error.message);
    let record = bed.record().expect("recorded");
    assert_eq!(record.last_phase(), Some(Phase::Verified));
    assert_eq!(record.failed.map(|f| f.unfenced), Some(false));
    assert_eq!(
        bed.primary_group.now().desired,
        0,
        "stays fenced: the DR side serves"
    );

    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("resumed");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(bed.restored().len(), 1, "not restored again");
    assert!(bed.dns_points_at_dr());
    assert_eq!(record.failed, None);
}

#[tokio::test(start_paused = true)]
async fn a_run_cut_off_after_the_restore_finds_the_standby_holding_it() {
    let bed = Bed::down();
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    // As if the run had stopped right after the restore, before recording it.
    let mut record = bed.record().expect("recorded");
    record.phases.truncate(3);
    *bed.records.record.lock().expect("lock") = Some(record);
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("resumed");
    let FailoverOutcome::FailedOver(record) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(bed.restored().len(), 1, "the standby already held it");
    let restored = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Restored)
        .expect("the phase");
    assert!(
        restored.detail.starts_with("already restored"),
        "{}",
        restored.detail
    );
    assert_eq!(
        bed.notifier.sent().len(),
        2,
        "told again: the operators see the resumed run"
    );
}

#[tokio::test(start_paused = true)]
async fn the_plan_names_the_snapshot_its_age_and_what_blocks_and_changes_nothing() {
    let bed = Bed::with(FakePrimary::healthy());
    let outcome = bed.send(json!({"action": "plan"})).await.expect("a plan");
    let FailoverOutcome::Planned(plan) = outcome else {
        panic!("{outcome:?}");
    };
    let snapshot = plan.snapshot.expect("a snapshot");
    assert_eq!(snapshot.object, dr_copy(1, 60).object);
    assert_eq!(snapshot.canary, Some(canary_of(1)));
    assert!(
        (3590..=3610).contains(&snapshot.age_seconds),
        "{}",
        snapshot.age_seconds
    );
    assert_eq!(snapshot.share_generation, 1);
    assert!(!snapshot.proven);
    assert!(plan.primary.healthy);
    assert_eq!(plan.blocking.len(), 1, "{:?}", plan.blocking);
    assert_eq!(plan.phases.len(), Phase::ALL.len());
    assert_eq!(bed.record(), None);
    assert_eq!(bed.primary_group.now().desired, 3);
    assert_eq!(bed.standby_group.now().desired, 1);
}

#[tokio::test(start_paused = true)]
async fn a_snapshot_that_failed_its_drill_is_never_chosen() {
    let bed = Bed::down();
    let mut newest = dr_copy(1, 60);
    newest.drill = Some(DrillResult {
        at: Utc::now(),
        passed: false,
        detail: "checksum mismatch".into(),
    });
    crate::snapshots::catalog::Catalog::put(&bed.catalog, &newest)
        .await
        .expect("put");
    let FailoverOutcome::Planned(plan) = bed.send(json!({"action": "plan"})).await.expect("plan")
    else {
        panic!("a plan");
    };
    assert_eq!(plan.snapshot.map(|s| s.object), Some(dr_copy(5, 40).object));
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    assert_eq!(bed.restored(), [dr_copy(5, 40).object]);
}

#[tokio::test(start_paused = true)]
async fn missing_shares_in_the_dr_region_refuse_before_anything_changes() {
    let bed = Bed::down();
    bed.failover
        .parameters
        .values
        .lock()
        .expect("lock")
        .retain(|name, _| !name.starts_with("/vault-lifecycle/prod/"));
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("no shares");
    assert_eq!(error.error_type, "Permanent.FailoverSharesMissing");
    assert_eq!(bed.record(), None);
    assert_eq!(bed.primary_group.now().desired, 3);
}

#[tokio::test(start_paused = true)]
async fn an_auto_unseal_primary_is_refused_by_name_before_anything_changes() {
    let bed = Bed::down();
    {
        let mut values = bed.failover.parameters.values.lock().expect("lock");
        let unseal: Vec<(String, String)> = values
            .iter()
            .filter(|(name, _)| name.starts_with("/vault-lifecycle/prod/unseal/"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (name, value) in unseal {
            values.remove(&name);
            values.insert(name.replace("/unseal/", "/recovery/"), value);
        }
    }
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("auto-unseal");
    assert_eq!(error.error_type, "Permanent.AutoUnsealPrimary");
    assert!(
        error.message.contains("/vault-lifecycle/prod/recovery"),
        "{}",
        error.message
    );
    assert_eq!(bed.record(), None);
    assert_eq!(bed.primary_group.now().desired, 3, "not fenced");
}

#[tokio::test(start_paused = true)]
async fn a_run_finding_the_lock_held_changes_nothing() {
    let bed = Bed::down();
    crate::cluster::locks::Locks::claim(
        bed.failover.locks.as_ref(),
        FAILOVER_LOCK,
        "failover other-run",
        Duration::from_secs(900),
    )
    .await
    .expect("claimed");
    let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("an answer");
    assert!(
        matches!(outcome, FailoverOutcome::Busy { .. }),
        "{outcome:?}"
    );
    assert_eq!(bed.record(), None);
    assert_eq!(bed.primary_group.now().desired, 3);
}

#[tokio::test(start_paused = true)]
async fn a_primary_whose_certificate_is_not_trusted_is_never_taken_for_down() {
    let bed = Bed::with(FakePrimary::answering(vec![Err(
        crate::failover::ProbeFailure::Untrusted("invalid peer certificate: BadSignature".into()),
    )]));
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("cannot tell");
    assert_eq!(error.error_type, "Permanent.PrimaryUnverifiable");
    assert!(
        error.message.contains("VAULT_CACERT_PEM"),
        "{}",
        error.message
    );
    assert_eq!(bed.record(), None);
    assert_eq!(bed.primary_group.now().desired, 3, "nothing fenced");
    let FailoverOutcome::Planned(plan) = bed.send(json!({"action": "plan"})).await.expect("plan")
    else {
        panic!("a plan");
    };
    assert!(plan.primary.untrusted && !plan.primary.healthy);
    assert_eq!(plan.blocking.len(), 1, "{:?}", plan.blocking);
}

#[tokio::test(start_paused = true)]
async fn each_delivery_form_of_the_sample_alarms_fails_over() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/dr-failover/");
    for sample in [
        "alarm-action-composite.json",
        "eventbridge-composite.json",
        "sns-metric.json",
    ] {
        let mut bed = Bed::down();
        bed.failover.settings.alarms = vec![
            "prod-vault-primary-down".into(),
            "prod-vault-cluster-unhealthy".into(),
        ];
        let text = std::fs::read_to_string(format!("{root}{sample}")).expect("a sample");
        let event: Value = serde_json::from_str(&text).expect("JSON");
        let outcome = bed.send(event).await.expect(sample);
        assert!(
            matches!(outcome, FailoverOutcome::FailedOver(_)),
            "{sample}: {outcome:?}"
        );
        assert!(bed.dns_points_at_dr(), "{sample}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_cut_off_after_any_phase_converges_on_the_next_delivery() {
    for kept in 1..Phase::ALL.len() {
        let bed = Bed::down();
        bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
        // As if the run had stopped right after phase `kept`, its later phases done or
        // half done but not recorded.
        let mut record = bed.record().expect("recorded");
        record.phases.truncate(kept);
        *bed.records.record.lock().expect("lock") = Some(record);
        let outcome = bed.send(alarm(ALARM, "ALARM")).await.expect("resumed");
        let FailoverOutcome::FailedOver(record) = outcome else {
            panic!("after {kept} phases: {outcome:?}");
        };
        let last = Phase::ALL[kept - 1];
        assert_eq!(
            record.phases.iter().map(|p| p.phase).collect::<Vec<_>>(),
            Phase::ALL,
            "after {last}"
        );
        assert_eq!(bed.restored().len(), 1, "after {last}: restored once");
        assert!(bed.dns_points_at_dr(), "after {last}");
        assert_eq!(bed.primary_group.now().desired, 0, "after {last}: fenced");
        assert_eq!(
            record.primary_group_was.map(|c| c.desired),
            Some(3),
            "after {last}: the size to give back is the one before the fence"
        );
        assert_eq!(bed.standby_group.now().desired, 3, "after {last}");
        let standby_keys = KeyLayout::new("/vault-lifecycle", "prod-dr");
        let generations =
            crate::keys::generations(&bed.failover.parameters, &standby_keys, ShareKind::Unseal)
                .await
                .expect("read");
        assert_eq!(
            (generations.in_force, generations.pending),
            (2, None),
            "after {last}: the primary's shares adopted once"
        );
        assert!(bed.notifier.sent().len() <= 2, "after {last}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_primary_that_serves_again_after_a_failed_run_is_not_fenced_by_the_next_alarm() {
    let healthy = FakePrimary::healthy().answers.lock().expect("lock").clone();
    let mut answers: Vec<_> = (0..3)
        .map(|_| Err(crate::failover::ProbeFailure::NoAnswer("refused".into())))
        .collect();
    answers.extend(healthy);
    let bed = Bed::with(FakePrimary::answering(answers));
    bed.restores.fail_next.store(1, Ordering::SeqCst);
    bed.send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("the restore fails");
    assert_eq!(bed.primary_group.now().desired, 3, "given its size back");
    // The primary serves again; the alarm comes once more.
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("confirmed again");
    assert_eq!(error.error_type, "Permanent.PrimaryHealthy");
    assert_eq!(bed.primary_group.now().desired, 3, "not fenced again");
    assert!(bed.restored().is_empty());
}

/// A pilot light's node answers active while its launch is pending (node-lifecycle
/// still bootstraps it: dr-failover's AppRole may not exist yet): the standby is up only
/// once the launch has completed, and nothing is restored before.
#[tokio::test(start_paused = true)]
async fn a_pilot_light_node_is_up_only_once_its_launch_completed() {
    let mut bed = Bed::down();
    bed.standby_group.capacity.lock().expect("lock").desired = 0;
    let fleet = Arc::new(FakeFleet::of(&bed.standby, &["d-1"]));
    fleet
        .states
        .lock()
        .expect("lock")
        .insert("d-1".into(), "Pending:Wait".into());
    bed.failover.standby_fleet = Box::new(fleet.clone());
    let bootstrap = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(bed.restored().is_empty(), "nothing restored while pending");
        fleet
            .states
            .lock()
            .expect("lock")
            .remove(&crate::ids::InstanceId::from("d-1"));
    };
    let (outcome, ()) = tokio::join!(bed.send(alarm(ALARM, "ALARM")), bootstrap);
    let Ok(FailoverOutcome::FailedOver(record)) = outcome else {
        panic!("{outcome:?}");
    };
    let up = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::StandbyUp)
        .expect("standby-up");
    assert_eq!(up.detail, "node d-1 active (started from 0)");
    // The launch completed 30 s after the alarm, the primary's probes took the first 4,
    // and the standby is asked once a second.
    assert!((26_000..=27_000).contains(&up.took_ms), "{}", up.took_ms);
    assert_eq!(bed.restored(), [dr_copy(1, 60).object]);
}

#[tokio::test(start_paused = true)]
async fn a_run_cut_off_after_raising_a_pilot_light_still_says_it_started_from_0() {
    let bed = Bed::down();
    bed.standby_group.capacity.lock().expect("lock").desired = 0;
    bed.send(alarm(ALARM, "ALARM")).await.expect("failed over");
    // As if the run had stopped in standby-up, after raising the group to 1.
    let mut record = bed.record().expect("recorded");
    record.phases.truncate(2);
    *bed.records.record.lock().expect("lock") = Some(record);
    bed.standby_group.capacity.lock().expect("lock").desired = 1;
    let FailoverOutcome::FailedOver(record) =
        bed.send(alarm(ALARM, "ALARM")).await.expect("resumed")
    else {
        panic!("a failover");
    };
    let up = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::StandbyUp)
        .expect("standby-up");
    assert!(up.detail.ends_with("(started from 0)"), "{}", up.detail);
    assert_eq!(record.standby_group_was.map(|c| c.desired), Some(0));
}

#[tokio::test(start_paused = true)]
async fn a_corrupted_copy_met_by_a_failover_is_set_aside_and_the_one_before_restored() {
    let bed = Bed::down();
    // The newest copy no longer matches its catalog entry: found before anything is sent.
    bed.restores.fail_next.store(1, Ordering::SeqCst);
    *bed.restores.fail_as.lock().expect("lock") = "Permanent.ChecksumMismatch".into();
    let FailoverOutcome::FailedOver(record) =
        bed.send(alarm(ALARM, "ALARM")).await.expect("failed over")
    else {
        panic!("a failover");
    };
    assert_eq!(record.snapshot, dr_copy(5, 40).object, "the copy before it");
    assert_eq!(record.snapshot_canary, Some(canary_of(5)));
    assert_eq!(bed.restored(), [dr_copy(5, 40).object]);
    let restored = record
        .phases
        .iter()
        .find(|p| p.phase == Phase::Restored)
        .expect("restored");
    assert!(
        restored.detail.contains("set aside") && restored.detail.contains("ChecksumMismatch"),
        "{}",
        restored.detail
    );
    let entries = bed.catalog.entries.lock().expect("lock").clone();
    let newest = entries
        .iter()
        .find(|e| e.object == dr_copy(1, 60).object)
        .expect("catalogued");
    assert!(newest.drill_failed(), "never chosen again: {newest:?}");
    assert!(bed.dns_points_at_dr());
}

#[tokio::test(start_paused = true)]
async fn a_failover_whose_every_copy_is_corrupted_says_so_and_gives_the_primary_back() {
    let bed = Bed::down();
    bed.restores.fail_next.store(2, Ordering::SeqCst);
    *bed.restores.fail_as.lock().expect("lock") = "Permanent.ChecksumMismatch".into();
    let error = bed
        .send(alarm(ALARM, "ALARM"))
        .await
        .expect_err("no usable copy");
    assert!(
        error.message.contains("every usable copy was set aside"),
        "{}",
        error.message
    );
    assert!(bed.restored().is_empty());
    assert_eq!(bed.primary_group.now().desired, 3, "unfenced");
    assert!(!bed.dns_points_at_dr());
}
