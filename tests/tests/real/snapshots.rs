//! Raft snapshots of a real OpenBao cluster through the in-stream check (the archive's
//! layout is what the check expects, and a stream cut mid-way is refused), and the S3
//! store against moto (part by part, read back, abort leaves nothing).

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::json;
use shared::{
    chunks::ChunkSource,
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
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
    })?;
    let node: NodeAddr = bao.nodes[0].api_addr.parse().map_err(anyhow::Error::msg)?;
    let root = Secret::new(keys.root_token.clone());

    let mut body = vault
        .snapshot(&node, &root, Duration::from_secs(60))
        .await?;
    let mut check = SnapshotCheck::new();
    let mut chunks = 0;
    while let Some(chunk) = body.next_chunk().await? {
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
    while let Some(chunk) = body.next_chunk().await? {
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

#[tokio::test]
async fn the_s3_store_uploads_part_by_part_and_an_aborted_upload_leaves_nothing() -> Result<()> {
    use std::collections::BTreeMap;

    use shared::{aws::S3SnapshotStore, snapshots::store::SnapshotStore};
    use testbed::{
        moto::{Moto, RegionFixture},
        unique_name,
    };

    let moto = Moto::shared().await?;
    let region = RegionFixture::create(moto, "eu-west-1", &unique_name("s3")).await?;
    let store = S3SnapshotStore::from_sdk(
        &region.sdk,
        region.bucket.clone(),
        Some(region.kms_key.clone()),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&region.sdk)
            .force_path_style(true)
            .build(),
    );
    let metadata = BTreeMap::from([("raft-index".to_owned(), "42".to_owned())]);
    let parts = [vec![1u8; 5 << 20], vec![2u8; 5 << 20], vec![3u8; 1000]];

    let key = "prod/2026-11-23T10:00:00Z-42.snap";
    let mut upload = store.begin(key, &metadata).await?;
    for part in &parts {
        upload.part(bytes::Bytes::from(part.clone())).await?;
    }
    let stored = upload.complete().await?;
    let version = stored
        .version_id
        .clone()
        .context("a versioned bucket gives a version")?;
    let object = s3
        .get_object()
        .bucket(&region.bucket)
        .key(key)
        .version_id(&version)
        .send()
        .await?;
    assert_eq!(
        object
            .metadata()
            .and_then(|m| m.get("raft-index"))
            .map(String::as_str),
        Some("42")
    );
    assert_eq!(
        object.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    let body = object.body.collect().await?.into_bytes();
    assert_eq!(
        body.as_ref(),
        parts.concat().as_slice(),
        "read back as written"
    );

    // An aborted upload makes no object and leaves no parts behind.
    let aborted = "prod/aborted.snap";
    let mut upload = store.begin(aborted, &metadata).await?;
    upload.part(bytes::Bytes::from(parts[0].clone())).await?;
    upload.abort().await?;
    assert!(
        s3.head_object()
            .bucket(&region.bucket)
            .key(aborted)
            .send()
            .await
            .is_err(),
        "no object"
    );
    let pending = s3
        .list_multipart_uploads()
        .bucket(&region.bucket)
        .send()
        .await?;
    assert!(pending.uploads().is_empty(), "{:?}", pending.uploads());
    Ok(())
}

/// Stops a real snapshot body after `limit` bytes, as a connection dropped mid-way.
struct CutAfter {
    body: shared::vault::SnapshotBody,
    left: usize,
}

#[async_trait::async_trait]
impl ChunkSource for CutAfter {
    type Error = shared::vault::VaultError;
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, shared::vault::VaultError> {
        if self.left == 0 {
            return Ok(None);
        }
        Ok(self.body.next_chunk().await?.map(|mut chunk| {
            chunk.truncate(self.left);
            self.left -= chunk.len();
            chunk
        }))
    }
}

#[tokio::test]
async fn a_real_snapshot_streams_into_s3_checked_and_a_cut_one_stores_nothing() -> Result<()> {
    use std::collections::BTreeMap;

    use shared::{
        aws::S3SnapshotStore,
        snapshots::stream::{stream_into_store, StreamError, MIN_PART_SIZE},
    };
    use testbed::{
        moto::{Moto, RegionFixture},
        unique_name,
    };

    let mut bao = BaoCluster::start(&["stream-1".to_owned()], Seal::Shamir).await?;
    let keys = bao.bootstrap().await?;
    let vault = VaultClient::new(&VaultSettings {
        ca: CaSource::Pem(bao.ca.ca_pem.clone()),
        request_timeout: Duration::from_secs(5),
        max_retries: 2,
        init_timeout: shared::config::DEFAULT_INIT_TIMEOUT,
    })?;
    let node: NodeAddr = bao.nodes[0].api_addr.parse().map_err(anyhow::Error::msg)?;
    let root = Secret::new(keys.root_token.clone());
    let moto = Moto::shared().await?;
    let region = RegionFixture::create(moto, "eu-west-1", &unique_name("stream")).await?;
    let store = S3SnapshotStore::from_sdk(&region.sdk, region.bucket.clone(), None);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&region.sdk)
            .force_path_style(true)
            .build(),
    );
    let key = |index: u64, _term: u64| format!("prod/snapshot-{index}.snap");

    let mut body = vault
        .snapshot(&node, &root, Duration::from_secs(60))
        .await?;
    let streamed = stream_into_store(&mut body, &store, MIN_PART_SIZE, |i, t| {
        (key(i, t), BTreeMap::new())
    })
    .await?;
    assert_eq!(
        streamed.object.key,
        format!("prod/snapshot-{}.snap", streamed.facts.index)
    );
    let object = s3
        .get_object()
        .bucket(&region.bucket)
        .key(&streamed.object.key)
        .set_version_id(streamed.object.version_id.clone())
        .send()
        .await?;
    let stored = object.body.collect().await?.into_bytes();
    assert_eq!(
        shared::testing::sha256_hex(&stored),
        streamed.facts.sha256,
        "the object is the stream the check passed"
    );

    // The same snapshot cut mid-way: refused, and no object is made.
    let body = vault
        .snapshot(&node, &root, Duration::from_secs(60))
        .await?;
    let mut cut = CutAfter {
        body,
        left: stored.len() / 2,
    };
    let err = stream_into_store(&mut cut, &store, MIN_PART_SIZE, |i, t| {
        (key(i, t), BTreeMap::new())
    })
    .await
    .expect_err("a cut snapshot");
    assert!(matches!(err, StreamError::Archive(_)), "{err}");
    let listed = s3
        .list_object_versions()
        .bucket(&region.bucket)
        .send()
        .await?;
    assert_eq!(
        listed.versions().len(),
        1,
        "only the good snapshot is stored"
    );
    let pending = s3
        .list_multipart_uploads()
        .bucket(&region.bucket)
        .send()
        .await?;
    assert!(pending.uploads().is_empty(), "the cut upload was aborted");
    Ok(())
}
