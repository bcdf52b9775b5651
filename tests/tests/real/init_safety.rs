//! The cluster's one-time initialisation against real OpenBao servers and moto: the keys
//! `sys/init` returns are never lost to a slow answer, and two deliveries of the first
//! launch event at once initialise and bootstrap the cluster once.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use reqwest::Method;
use serde_json::Value;
use shared::{
    aws::DynamoStateRecords,
    lifecycle::{
        launch::LaunchReport,
        records::{InitStage, StateRecords},
        Outcome,
    },
    testing::{capture_logs, init_record_contract},
};
use testbed::{
    lifecycle::{handle, launched, records, LifecycleBed, REGION},
    moto::{Moto, RegionFixture},
    openbao::Seal,
    proxy::SlowInitProxy,
    unique_name,
};

/// Every share and the root token in SSM, the root token valid on the node.
async fn every_key_stored(bed: &LifecycleBed) -> Result<()> {
    let path = bed.ssm_path();
    for n in 1..=5 {
        let name = format!("{path}/unseal/share-{n}");
        bed.parameter(&name)
            .await?
            .with_context(|| format!("{name} is not stored"))?;
    }
    let root = bed
        .parameter(&format!("{path}/root-token"))
        .await?
        .context("the root token is not stored")?;
    let (status, _) = bed
        .bao
        .api(0, Method::GET, "auth/token/lookup-self", Some(&root), None)
        .await?;
    assert_eq!(status, 200, "the stored root token is the cluster's");
    Ok(())
}

#[tokio::test]
async fn a_sys_init_slower_than_the_request_timeout_completes_with_every_key_stored() -> Result<()>
{
    let logs = capture_logs();
    let bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let id = bed.region.instances(None).await?.remove(0);
    // The node's answer to sys/init arrives twice the request timeout late.
    let request_timeout = Duration::from_secs(3);
    let proxy = SlowInitProxy::start(
        &bed.bao.nodes[0].api_addr,
        &bed.bao.ca.ca_pem,
        request_timeout * 2,
    )
    .await?;
    let timeout = request_timeout.as_secs().to_string();
    let proxy_port = proxy.port.to_string();
    let function = bed.function(&[
        ("VAULT_PORT", proxy_port.as_str()),
        ("VAULT_REQUEST_TIMEOUT_SECS", timeout.as_str()),
        ("KEEP_ROOT_TOKEN", "true"),
    ])?;
    let event = LifecycleBed::event(&bed.pending(&id, "launch").await?);
    let outcome = handle(&function, &event).await;
    assert_eq!(
        proxy.held(),
        1,
        "the answer to sys/init was held: {outcome:?}"
    );
    let report = launched(&outcome)?;
    assert!(
        report.initialised_cluster && report.completed_now,
        "{report:?}"
    );
    every_key_stored(&bed).await?;
    assert_eq!(
        records(&bed)?.init().await?.map(|r| r.stage),
        Some(InitStage::Bootstrapped)
    );
    let logged = logs.contents();
    for (name, secret) in bed.stored_secrets().await? {
        assert!(!logged.contains(&secret), "{name} reached the logs");
    }
    Ok(())
}

#[tokio::test]
async fn two_deliveries_of_the_first_launch_event_at_once_initialise_and_bootstrap_once(
) -> Result<()> {
    let bed = LifecycleBed::start(1, Seal::Shamir).await?;
    let id = bed.region.instances(None).await?.remove(0);
    let event = LifecycleBed::event(&bed.pending(&id, "launch").await?);
    let keep = [("KEEP_ROOT_TOKEN", "true")];
    let (first, second) = (bed.function(&keep)?, bed.function(&keep)?);
    let (a, b) = tokio::join!(handle(&first, &event), handle(&second, &event));
    // One delivery carries the action out; the other finds it at work (in progress) or,
    // if it comes second, done.
    let carried_out: Vec<&LaunchReport> = [&a, &b]
        .into_iter()
        .filter_map(|o| launched(o).ok())
        .collect();
    let [report] = carried_out.as_slice() else {
        bail!("expected one delivery to launch, got {a:?} and {b:?}");
    };
    assert!(
        report.initialised_cluster && report.completed_now,
        "{report:?}"
    );
    let other = if launched(&a).is_ok() { &b } else { &a };
    assert!(
        matches!(other, Ok(Outcome::AlreadyCompleted { .. })),
        "{other:?}"
    );
    assert_eq!(bed.pending(&id, "launch").await?.state, "completed");
    every_key_stored(&bed).await?;
    assert_eq!(
        records(&bed)?.init().await?.map(|r| r.stage),
        Some(InitStage::Bootstrapped)
    );
    // One bootstrap: each function's AppRole has the one secret ID stored in SSM.
    let root = bed
        .parameter(&format!("{}/root-token", bed.ssm_path()))
        .await?
        .context("root token")?;
    // AppRoles only for the functions deployed, within the configured limits.
    let (status, roles) = bed
        .bao
        .api(
            0,
            Method::from_bytes(b"LIST")?,
            "auth/approle/role",
            Some(&root),
            None,
        )
        .await?;
    assert_eq!(status, 200, "{roles}");
    let mut listed: Vec<&str> = roles["data"]["keys"]
        .as_array()
        .context("role names")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "health-probe",
            "node-lifecycle",
            "snapshot-backup",
            "snapshot-restore"
        ]
    );
    let (_, role) = bed
        .bao
        .api(
            0,
            Method::GET,
            "auth/approle/role/snapshot-restore",
            Some(&root),
            None,
        )
        .await?;
    assert_eq!(role["data"]["secret_id_ttl"], 720 * 3600, "{role}");
    assert_eq!(
        role["data"]["secret_id_bound_cidrs"],
        serde_json::json!(["127.0.0.0/8"]),
        "{role}"
    );
    for function in listed {
        let path = format!("auth/approle/role/{function}/secret-id");
        let (status, listed) = bed
            .bao
            .api(0, Method::from_bytes(b"LIST")?, &path, Some(&root), None)
            .await?;
        assert_eq!(status, 200, "{path}: {listed}");
        let accessors = listed["data"]["keys"].as_array().map(Vec::len);
        assert_eq!(accessors, Some(1), "{function}: {listed}");
    }
    Ok(())
}

#[tokio::test]
async fn the_init_record_in_dynamodb_never_goes_back_a_stage() -> Result<()> {
    let moto = Moto::shared().await?;
    let cluster = unique_name("rec");
    let region = RegionFixture::create(moto, REGION, &cluster).await?;
    let records = DynamoStateRecords::new(
        aws_sdk_dynamodb::Client::new(&region.sdk),
        region.table.clone(),
        cluster.parse().map_err(anyhow::Error::msg)?,
    );
    if let Err(breach) = init_record_contract(&records).await {
        bail!("{breach}");
    }
    Ok(())
}

/// An instance's launch records in DynamoDB: one still in progress means its launch
/// never completed (its terminate then counts an abandoned launch); another instance's
/// records, or another group's, never answer for it.
#[tokio::test]
async fn an_unfinished_launch_is_found_by_its_instance_in_dynamodb() -> Result<()> {
    use shared::{
        events::{LifecycleAction, Transition},
        lifecycle::records::{ActionRecord, ActionStage},
    };
    let moto = Moto::shared().await?;
    let cluster = unique_name("rec");
    let region = RegionFixture::create(moto, REGION, &cluster).await?;
    let records = DynamoStateRecords::new(
        aws_sdk_dynamodb::Client::new(&region.sdk),
        region.table.clone(),
        cluster.parse().map_err(anyhow::Error::msg)?,
    );
    let launch = |group: &str, instance: &str, token: &str| {
        LifecycleAction::plain(group, "hook", instance.into(), token, Transition::Launching)
    };
    let put = |action: LifecycleAction, stage: ActionStage| {
        let records = &records;
        async move {
            let record = ActionRecord {
                instance: action.instance.clone(),
                transition: action.transition,
                stage,
            };
            records.put_action(&action, &record).await
        }
    };
    let i1 = "i-0a".into();
    assert!(!records.unfinished_launch("asg", &i1).await?, "no record");
    put(launch("asg", "i-0a", "t-1"), ActionStage::Joining).await?;
    put(launch("asg", "i-0ab", "t-2"), ActionStage::Continued).await?;
    put(launch("other", "i-0b", "t-3"), ActionStage::Started).await?;
    assert!(records.unfinished_launch("asg", &i1).await?);
    assert!(!records.unfinished_launch("asg", &"i-0ab".into()).await?);
    assert!(
        !records.unfinished_launch("asg", &"i-0b".into()).await?,
        "another group's"
    );
    put(launch("asg", "i-0a", "t-1"), ActionStage::Continued).await?;
    assert!(!records.unfinished_launch("asg", &i1).await?, "completed");
    Ok(())
}
