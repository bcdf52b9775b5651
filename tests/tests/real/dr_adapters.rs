//! The failover's AWS adapters against moto: each keeps the contract its fake keeps
//! (`shared::testing::{dns_contract, notifier_contract, group_contract}`), and a zone,
//! topic or group that does not exist is named in a permanent error.

use anyhow::Result;
use shared::{
    aws::{AsgCapacity, Route53Records, SnsNotifier},
    cluster::dr_ports::{
        CapacityError, DnsError, DnsRecords, DnsTarget, GroupCapacity, Notifier, NotifyError,
    },
    errors::Classify,
    testing::{dns_contract, group_contract, notifier_contract},
};
use testbed::{
    moto::{Moto, RegionFixture},
    unique_name,
};

#[tokio::test]
async fn route53_records_keep_the_dns_contract() -> Result<()> {
    let moto = Moto::shared().await?;
    let name = unique_name("dns");
    let fixture = RegionFixture::create(moto, "eu-west-1", &name).await?;
    let domain = format!("{name}.example.com");
    let zone = fixture.create_hosted_zone(&domain).await?;
    let records = Route53Records::from_sdk(&fixture.sdk, zone.clone(), &format!("vault.{domain}"));
    dns_contract(&records).await.map_err(anyhow::Error::msg)?;

    // A record of the zone the port does not own is untouched by it.
    let sibling = Route53Records::from_sdk(&fixture.sdk, zone.clone(), &format!("other.{domain}"));
    assert_eq!(sibling.current().await?, None);

    // A name outside the zone: Route 53's refusal, the record named.
    let outside = Route53Records::from_sdk(&fixture.sdk, zone, "vault.elsewhere.org");
    let target = DnsTarget::cname("vault.dr.example.com", 60)?;
    match outside.point_at(&target).await {
        Err(e @ DnsError::Refused { .. }) => {
            assert!(!e.retry_helps(), "{e}");
            assert!(e.to_string().contains("vault.elsewhere.org"), "{e}");
        }
        other => anyhow::bail!("expected Refused, got {other:?}"),
    }

    let missing =
        Route53Records::from_sdk(&fixture.sdk, "ZNOSUCHZONE0".into(), "vault.example.com");
    for err in [
        missing.current().await.expect_err("unknown zone"),
        missing.point_at(&target).await.expect_err("unknown zone"),
    ] {
        assert!(matches!(err, DnsError::NoSuchZone { .. }), "{err:?}");
        assert_eq!(err.name(), "NoSuchHostedZone");
        assert!(err.to_string().contains("ZNOSUCHZONE0"), "{err}");
    }
    Ok(())
}

#[tokio::test]
async fn sns_notifier_keeps_the_notifier_contract() -> Result<()> {
    // A moto of its own: what a topic received is read back from moto's state dump,
    // which fails once another test's S3 state is in it (measured: MissingBucket).
    let moto = &Moto::start().await?;
    let name = unique_name("sns");
    // The function runs in the DR region; the topic's ARN decides where it publishes.
    let home = RegionFixture::create(moto, "eu-west-1", &name).await?;
    let dr = RegionFixture::create(moto, "eu-central-1", &name).await?;
    let topic = dr.create_topic(&format!("{name}-failover")).await?;
    let notifier = SnsNotifier::from_sdk(&home.sdk, topic.clone());
    notifier_contract(&notifier, || async {
        moto.published(&topic).await.map_err(|e| format!("{e:#}"))
    })
    .await
    .map_err(anyhow::Error::msg)?;

    let unknown = format!("{topic}-gone");
    let err = SnsNotifier::from_sdk(&home.sdk, unknown.clone())
        .notify("dr-failover", "nobody hears this")
        .await
        .expect_err("unknown topic");
    assert!(matches!(err, NotifyError::NoSuchTopic { .. }), "{err:?}");
    assert!(
        !err.retry_helps() && err.to_string().contains(&unknown),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn asg_capacity_keeps_the_group_contract() -> Result<()> {
    let moto = Moto::shared().await?;
    let name = unique_name("cap");
    let fixture = RegionFixture::create(moto, "eu-west-1", &name).await?;
    fixture.create_asg(0, false).await?;
    // Built for the other region, as the DR function builds the primary's group.
    let elsewhere = moto.sdk("eu-central-1").await;
    let group = AsgCapacity::in_region(&elsewhere, "eu-west-1", fixture.asg.clone());
    group_contract(&group).await.map_err(anyhow::Error::msg)?;

    let missing = AsgCapacity::from_sdk(&fixture.sdk, format!("{name}-no-such-group"));
    for err in [
        missing.capacity().await.expect_err("unknown group"),
        missing.set_desired(1).await.expect_err("unknown group"),
        missing.resize(0, 0).await.expect_err("unknown group"),
    ] {
        assert!(matches!(err, CapacityError::NoSuchGroup { .. }), "{err:?}");
        assert!(err.to_string().contains("no-such-group"), "{err}");
    }
    Ok(())
}
