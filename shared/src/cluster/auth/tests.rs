use super::*;
use crate::testing::{capture_logs, FakeCluster, FakeParameters};

fn approle() -> AuthSettings {
    AuthSettings::AppRole {
        mount: "approle".into(),
        role_id_parameter: "/p/role-id".into(),
        secret_id_parameter: "/p/secret-id".into(),
    }
}

#[tokio::test]
async fn logs_in_once_and_reuses_the_token() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    let parameters = FakeParameters::with(&[
        ("/p/role-id", "role-canary-1"),
        ("/p/secret-id", "secret-canary-2"),
    ]);
    let login = VaultLogin::new(approle(), parameters);
    let node = cluster.addr("i-1");
    let first = login.token(&cluster, &node).await.expect("login");
    let second = login.token(&cluster, &node).await.expect("cached");
    assert_eq!(first, second);
    assert_eq!(cluster.logins(), 1);
    login.forget();
    login.token(&cluster, &node).await.expect("fresh login");
    assert_eq!(cluster.logins(), 2);
}

/// A step that reads the Raft configuration with this login's token.
async fn read_raft(
    login: &VaultLogin<FakeParameters>,
    cluster: &FakeCluster,
) -> Result<(), VaultError> {
    let node = cluster.addr("i-1");
    let token = login.token(cluster, &node).await.map_err(|e| match e {
        LoginError::Refused { source, .. } | LoginError::Unavailable { source, .. } => source,
        other => panic!("{other}"),
    })?;
    cluster.raft_configuration(&node, &token).await.map(|_| ())
}

fn canary_parameters() -> FakeParameters {
    FakeParameters::with(&[
        ("/p/role-id", "role-canary-1"),
        ("/p/secret-id", "secret-canary-2"),
    ])
}

#[tokio::test]
async fn a_cached_token_refused_after_a_restore_is_replaced_once() {
    let logs = capture_logs();
    let cluster = FakeCluster::healthy(&["i-1"]);
    let login = VaultLogin::new(approle(), canary_parameters());
    read_raft(&login, &cluster).await.expect("first run");
    // A restore brings back data without the tokens issued since the snapshot.
    cluster.state().tokens.clear();
    let mut attempts = 0;
    login
        .retry_if_stale(|| {
            attempts += 1;
            read_raft(&login, &cluster)
        })
        .await
        .expect("a fresh login succeeds");
    assert_eq!(attempts, 2, "one attempt with the stale token, one fresh");
    assert_eq!(cluster.logins(), 2);
    assert!(logs.contents().contains("refused the cached token"));
    assert!(!logs.contents().contains("secret-canary-2"));
}

#[tokio::test]
async fn a_fresh_token_refused_is_not_retried() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    let login = VaultLogin::new(approle(), canary_parameters());
    let mut attempts = 0;
    let err = login
        .retry_if_stale(|| {
            attempts += 1;
            // The token is fresh, and revoked before it is used: the policy's fault
            // as far as the login can tell.
            async {
                let node = cluster.addr("i-1");
                let token = login.token(&cluster, &node).await.expect("login");
                cluster.state().tokens.clear();
                cluster.raft_configuration(&node, &token).await.map(|_| ())
            }
        })
        .await
        .expect_err("refused");
    assert_eq!(err.status(), Some(403));
    assert_eq!(attempts, 1);
    assert_eq!(cluster.logins(), 1);
}

#[tokio::test]
async fn a_refused_login_is_a_configuration_error_and_leaks_nothing() {
    let logs = capture_logs();
    let cluster = FakeCluster::healthy(&["i-1"]).refusing_logins();
    let parameters = FakeParameters::with(&[
        ("/p/role-id", "role-canary-1"),
        ("/p/secret-id", "secret-canary-2"),
    ]);
    let login = VaultLogin::new(approle(), parameters);
    let err = login
        .token(&cluster, &cluster.addr("i-1"))
        .await
        .expect_err("refused");
    assert!(err.is_configuration(), "{err}");
    for text in [
        logs.contents(),
        crate::error_chain(&err),
        format!("{err:?}"),
    ] {
        for secret in ["role-canary-1", "secret-canary-2"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }
}

struct CannedIdentity;

#[async_trait::async_trait]
impl CallerIdentitySigner for CannedIdentity {
    async fn sign_caller_identity(
        &self,
        _server_id: Option<&str>,
    ) -> Result<crate::cluster::ports::IamLoginRequest, IdentityError> {
        Ok(crate::cluster::ports::IamLoginRequest {
            method: "POST",
            url: "dXJs".into(),
            body: "Ym9keQ==".into(),
            headers: Secret::new("signed-canary"),
        })
    }
}

#[tokio::test]
async fn aws_auth_logs_in_with_the_functions_identity() {
    let aws = AuthSettings::Aws {
        mount: "aws".into(),
        role: "health-probe".into(),
        server_id: None,
        sts_region: None,
    };
    let cluster = FakeCluster::healthy(&["i-1"]);
    let without = VaultLogin::new(aws.clone(), FakeParameters::default());
    let err = without
        .token(&cluster, &cluster.addr("i-1"))
        .await
        .expect_err("no identity");
    assert!(
        matches!(err, LoginError::NoIdentity) && err.is_configuration(),
        "{err}"
    );
    let with =
        VaultLogin::new(aws, FakeParameters::default()).with_identity(Arc::new(CannedIdentity));
    with.token(&cluster, &cluster.addr("i-1"))
        .await
        .expect("aws login");
    assert_eq!(cluster.logins(), 1);
}

#[tokio::test]
async fn a_missing_parameter_is_named() {
    let cluster = FakeCluster::healthy(&["i-1"]);
    let login = VaultLogin::new(approle(), FakeParameters::with(&[("/p/role-id", "r")]));
    let err = login
        .token(&cluster, &cluster.addr("i-1"))
        .await
        .expect_err("missing");
    assert!(
        crate::error_chain(&err).contains("/p/secret-id"),
        "{}",
        crate::error_chain(&err)
    );
    assert_eq!(cluster.logins(), 0);
}
