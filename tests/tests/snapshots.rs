//! Raft snapshots of a real OpenBao cluster through the in-stream check: the archive's
//! layout is what the check expects, and a stream cut mid-way is refused.

use std::time::Duration;

use anyhow::Result;
use reqwest::Method;
use serde_json::json;
use shared::{
    config::{CaSource, VaultSettings},
    ids::NodeAddr,
    secret::Secret,
    snapshots::archive::{ArchiveError, SnapshotCheck},
    vault::VaultClient,
};
use testbed::openbao::{BaoCluster, Seal};

#[tokio::test]
async fn a_real_snapshot_passes_the_in_stream_check_and_a_cut_one_does_not() -> Result<()> {
    let mut bao = BaoCluster::start(&["snap-1".to_owned()], Seal::Shamir).await?;
    let keys = bao.bootstrap().await?;
    bao.root(
        0,
        Method::POST,
        "sys/mounts/kv",
        Some(json!({"type": "kv"})),
    )
    .await?;
    for i in 0..50 {
        bao.root(
            0,
            Method::PUT,
            &format!("kv/item-{i}"),
            Some(json!({"value": "x".repeat(2000)})),
        )
        .await?;
    }
    let vault = VaultClient::new(&VaultSettings {
        ca: CaSource::Pem(bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
    })?;
    let node: NodeAddr = bao.nodes[0].api_addr.parse().map_err(anyhow::Error::msg)?;
    let root = Secret::new(keys.root_token.clone());

    let mut body = vault
        .snapshot(&node, &root, Duration::from_secs(60))
        .await?;
    let mut check = SnapshotCheck::new();
    let mut chunks = 0;
    while let Some(chunk) = body.chunk().await? {
        check.update(&chunk)?;
        chunks += 1;
    }
    let facts = check.finish()?;
    assert!(facts.index > 0 && facts.term >= 1, "{facts:?}");
    assert!(
        facts.bytes > 10_000 && facts.state_size > 100_000,
        "{facts:?}"
    );
    assert_eq!(facts.sha256.len(), 64);
    assert!(chunks > 1, "the body arrives in chunks, not as one buffer");

    // The same snapshot stopped half-way, as a connection dropped mid-stream.
    let mut body = vault
        .snapshot(&node, &root, Duration::from_secs(60))
        .await?;
    let mut check = SnapshotCheck::new();
    while let Some(chunk) = body.chunk().await? {
        let room = (facts.bytes / 2).saturating_sub(check.bytes()) as usize;
        check.update(&chunk[..room.min(chunk.len())])?;
        if check.bytes() >= facts.bytes / 2 {
            break;
        }
    }
    let err = check.finish().expect_err("a cut snapshot");
    assert!(
        matches!(
            err,
            ArchiveError::Truncated { .. } | ArchiveError::Gzip { .. }
        ),
        "{err}"
    );

    // A token without the snapshot path is refused with the path named.
    let err = vault
        .snapshot(
            &node,
            &Secret::new("not-a-token".to_owned()),
            Duration::from_secs(10),
        )
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("403") && err.contains("sys/storage/raft/snapshot"),
        "{err}"
    );
    Ok(())
}
