//! Rebuilds: a group with no initialised node gets another cluster's snapshot in a new
//! node (throwaway keys, the snapshot forced, the source's shares); a redelivery resumes
//! without a second send; a node an earlier run initialised whose keys are gone is
//! refused by name, nothing sent.

use super::*;
use crate::{cluster::node::NodeApi, restore::error::RestoreError, testing::capture_logs};

/// A group of one fresh node (`i-4`) and staging's snapshot, catalogued, with the
/// three of staging's shares the threshold needs in SSM.
fn fresh_with_staging_snapshot() -> (Bed, CatalogEntry, Vec<u8>, crate::testing::Keyring) {
    let bed = Bed::over(FakeCluster::fresh(&["i-4"]), &["i-4"]);
    let staging = FakeCluster::healthy(&["s-1"]).keyed("staging");
    let keyring = staging.keyring();
    let bytes = staging.state().data.clone();
    bed.cluster().knows_snapshot(&bytes, keyring.clone());
    let entry = bed.catalogued(("staging", &keyring.cluster_id), &bytes, 0, 1);
    bed.store_shares("staging", &keyring.shares[..3]);
    (bed, entry, bytes, keyring)
}

#[tokio::test(start_paused = true)]
async fn a_group_with_no_initialised_node_is_rebuilt_from_another_clusters_snapshot() {
    let logs = capture_logs();
    let (bed, entry, bytes, keyring) = fresh_with_staging_snapshot();
    let rebuilt = bed
        .function
        .rebuild(&entry.object, (5, 3), deadline())
        .await
        .expect("rebuilt");
    assert!(rebuilt.initialised_now);
    assert_eq!(rebuilt.node.instance.as_str(), "i-4");
    {
        let cluster = bed.cluster().state();
        assert_eq!(cluster.data, bytes, "staging's data");
        assert_eq!(cluster.restores, vec![(bytes.clone(), true)], "forced");
        assert_eq!(cluster.shares, keyring.shares, "staging's keys from now on");
        assert_eq!(cluster.cluster_id, "c-staging");
        assert!(cluster.nodes.values().all(|n| !n.sealed));
    }
    assert_eq!(bed.cluster().calls("init"), 1);
    assert_eq!(bed.cluster().active().as_deref(), Some("i-4"));

    // A redelivery (or a run resumed after a cut-off) finds the node rebuilt: nothing is
    // initialised or sent again.
    let again = bed
        .function
        .rebuild(&entry.object, (5, 3), deadline())
        .await
        .expect("resumed");
    assert!(!again.initialised_now);
    assert_eq!(bed.cluster().calls("init"), 1);
    assert_eq!(bed.cluster().state().restores.len(), 1);
    let texts = [logs.contents(), format!("{rebuilt:?}")];
    for share in &keyring.shares {
        for text in &texts {
            assert!(!text.contains(share.as_str()), "a share leaked: {text}");
        }
    }
    assert!(
        !logs.contents().contains("fake-root-"),
        "no throwaway token logged"
    );
}

#[tokio::test(start_paused = true)]
async fn a_node_an_earlier_rebuild_initialised_and_lost_the_keys_of_is_refused_by_name() {
    let (bed, entry, _, _) = fresh_with_staging_snapshot();
    // An earlier run initialised the node and was cut off before its send: the node is
    // sealed (restarted) with throwaway keys nobody holds.
    let node = bed.cluster().addr("i-4");
    bed.cluster()
        .init(&node, 5, 3, false)
        .await
        .expect("initialised");
    let data = bed.cluster().state().data.clone();
    let error = bed
        .function
        .rebuild(&entry.object, (5, 3), deadline())
        .await
        .expect_err("refused");
    assert!(
        matches!(error, RestoreError::RebuildKeysLost { .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("node i-4 (")
            && error.to_string().contains("terminate the instance"),
        "names the instance to terminate: {error}"
    );
    assert!(bed.cluster().state().restores.is_empty(), "nothing sent");
    assert_eq!(bed.cluster().state().data, data);
    assert_eq!(bed.cluster().calls("init"), 1, "not initialised again");
}

#[tokio::test(start_paused = true)]
async fn a_group_with_no_node_in_service_is_refused_and_nothing_is_read() {
    let (mut bed, entry, _, _) = fresh_with_staging_snapshot();
    bed.function.fleet = Box::new(FakeFleet::of(bed.cluster(), &[]));
    let error = bed
        .function
        .rebuild(&entry.object, (5, 3), deadline())
        .await
        .expect_err("no node");
    assert!(
        matches!(error, RestoreError::NoNodeToRebuild { asked: 0 }),
        "{error}"
    );
    assert_eq!(bed.cluster().calls("init"), 0);
}
