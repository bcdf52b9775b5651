//! The test bed itself: what later tests stand on must be proven too.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_autoscaling::{error::ProvideErrorMetadata, types::LifecycleState};
use reqwest::Method;
use testbed::{
    moto::{Moto, RegionFixture},
    openbao::{BaoCluster, Seal, SealServer},
    poll_until,
    postgres::Postgres,
    unique_name,
};

#[tokio::test]
async fn both_regions_get_every_fixture() -> Result<()> {
    let moto = Moto::shared().await?;
    let name = unique_name("fx");
    for region in ["eu-west-1", "eu-central-1"] {
        let fixture = RegionFixture::create(moto, region, &name).await?;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&fixture.sdk)
                .force_path_style(true)
                .build(),
        );
        // moto 5.2 answers GetBucketVersioning with a malformed document, so versioning is
        // checked by what it does: two writes to one key keep two versions.
        let mut versions = Vec::new();
        for body in ["one", "two"] {
            let put = s3
                .put_object()
                .bucket(&fixture.bucket)
                .key("probe")
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .context("put")?;
            versions.push(
                put.version_id()
                    .context("no version id: versioning is off")?
                    .to_owned(),
            );
        }
        assert_ne!(versions[0], versions[1], "{region}");
        let first = s3
            .get_object()
            .bucket(&fixture.bucket)
            .key("probe")
            .version_id(&versions[0])
            .send()
            .await
            .context("get version")?;
        assert_eq!(first.body.collect().await?.into_bytes().as_ref(), b"one");
        let location = s3
            .get_bucket_location()
            .bucket(&fixture.bucket)
            .send()
            .await
            .context("get location")?;
        let located = location
            .location_constraint()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        assert_eq!(located, region, "the bucket lives in its region");

        let dynamo = aws_sdk_dynamodb::Client::new(&fixture.sdk);
        let table = dynamo
            .describe_table()
            .table_name(&fixture.table)
            .send()
            .await
            .context("describe table")?;
        let keys: Vec<&str> = table
            .table()
            .context("table")?
            .key_schema()
            .iter()
            .map(|k| k.attribute_name())
            .collect();
        assert_eq!(keys, ["pk", "sk"], "{region}");
        let ttl = dynamo
            .describe_time_to_live()
            .table_name(&fixture.table)
            .send()
            .await
            .context("describe ttl")?;
        assert_eq!(
            ttl.time_to_live_description()
                .and_then(|t| t.attribute_name()),
            Some("expires_at")
        );

        fixture
            .put_secret_parameter(&format!("/{name}/probe"), "canary-value")
            .await?;
        let read = aws_sdk_ssm::Client::new(&fixture.sdk)
            .get_parameter()
            .name(format!("/{name}/probe"))
            .with_decryption(true)
            .send()
            .await
            .context("get parameter")?;
        let parameter = read.parameter().context("parameter")?;
        assert_eq!(parameter.value(), Some("canary-value"));
        assert_eq!(
            parameter.r#type(),
            Some(&aws_sdk_ssm::types::ParameterType::SecureString)
        );

        let ids = fixture.create_asg(2, false).await?;
        assert_eq!(
            fixture.instances(Some(LifecycleState::InService)).await?,
            ids,
            "without hooks, instances go straight in service"
        );
    }
    Ok(())
}

#[tokio::test]
async fn lifecycle_hooks_hold_instances_until_their_action_completes() -> Result<()> {
    let moto = Moto::shared().await?;
    let fixture = RegionFixture::create(moto, "eu-west-1", &unique_name("hook")).await?;
    let ids = fixture.create_asg(2, true).await?;
    assert_eq!(ids.len(), 2);
    assert_eq!(
        fixture.instances(Some(LifecycleState::PendingWait)).await?,
        ids,
        "a launch hook holds new instances"
    );
    let pending: Vec<_> = moto
        .lifecycle_actions()
        .await?
        .into_iter()
        .filter(|a| a.group == fixture.asg)
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(
        pending
            .iter()
            .all(|a| a.state == "pending" && a.transition == "autoscaling:EC2_INSTANCE_LAUNCHING"),
        "{pending:?}"
    );

    let autoscaling = aws_sdk_autoscaling::Client::new(&fixture.sdk);
    let first = &pending[0];
    autoscaling
        .record_lifecycle_action_heartbeat()
        .auto_scaling_group_name(&fixture.asg)
        .lifecycle_hook_name(&first.hook)
        .lifecycle_action_token(&first.token)
        .send()
        .await?;
    let complete = |token: &str, result: &str| {
        autoscaling
            .complete_lifecycle_action()
            .auto_scaling_group_name(&fixture.asg)
            .lifecycle_hook_name(&first.hook)
            .lifecycle_action_token(token)
            .lifecycle_action_result(result)
            .send()
    };
    complete(&first.token, "CONTINUE").await?;
    let again = complete(&first.token, "CONTINUE")
        .await
        .expect_err("a completed action cannot complete twice");
    assert_eq!(again.code(), Some("ValidationError"), "{again:?}");
    assert_eq!(
        fixture.instances(Some(LifecycleState::InService)).await?,
        vec![first.instance_id.clone()]
    );

    let actions = moto.lifecycle_actions().await?;
    let done = actions
        .iter()
        .find(|a| a.token == first.token)
        .context("recorded")?;
    assert_eq!(
        (done.state.as_str(), done.result.as_deref(), done.heartbeats),
        ("completed", Some("CONTINUE"), 1)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_auto_unseal_brings_nodes_up_unsealed() -> Result<()> {
    let seal = SealServer::start().await?;
    let mut cluster =
        BaoCluster::start(&["auto-1".to_owned(), "auto-2".to_owned()], seal.seal_for()).await?;
    let keys = cluster.bootstrap().await?;
    assert_eq!(keys.keys.len(), 5, "recovery shares");
    // A restarted node unseals itself through the transit seal: nobody enters a share.
    cluster.restart(1).await?;
    cluster.wait_until_health(1, 429).await?;
    let (_, status) = cluster
        .api(1, Method::GET, "sys/seal-status", None, None)
        .await?;
    assert_eq!(status["type"], "transit");
    assert_eq!(status["sealed"], false);
    assert_eq!(status["recovery_seal"], true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shamir_node_restarts_sealed_and_a_dropped_cluster_leaves_no_process() -> Result<()> {
    let mut cluster = BaoCluster::start(&["s-1".to_owned()], Seal::Shamir).await?;
    cluster.bootstrap().await?;
    cluster.restart(0).await?;
    assert_eq!(
        cluster.health_code(0).await?,
        503,
        "a restarted Shamir node is sealed"
    );
    cluster.unseal(0).await?;
    cluster.wait_until_health(0, 200).await?;
    let pids = cluster.pids();
    assert_eq!(pids.len(), 1);
    drop(cluster);
    for pid in pids {
        poll_until(
            &format!("process {pid} to be gone"),
            Duration::from_secs(10),
            || async move {
                Ok((!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(()))
            },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn postgres_accepts_password_logins() -> Result<()> {
    let pg = Postgres::start().await?;
    assert_eq!(pg.query("select 40 + 2")?.trim(), "42");
    assert!(pg.url().starts_with("postgresql://postgres:"));
    Ok(())
}
