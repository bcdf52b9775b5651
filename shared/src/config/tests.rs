use super::*;
use crate::probe::ProbeConfig;

const MINIMAL: [(&str, &str); 2] = [("CLUSTER_NAME", "prod"), ("ASG_NAME", "vault-prod")];

#[test]
fn defaults_fit_a_standard_cluster() {
    let config = ProbeConfig::from(&Env::from_pairs(MINIMAL)).expect("minimal config");
    assert_eq!(config.cluster.port, 8200);
    assert_eq!(config.cluster.scheme, "https");
    assert_eq!(config.vault.ca, CaSource::System);
    assert_eq!(config.vault.request_timeout, Duration::from_secs(5));
    assert_eq!(config.vault.init_timeout, Duration::from_secs(120));
    assert_eq!(config.metrics_namespace, "VaultLifecycle");
    assert_eq!(
        config.auth,
        AuthSettings::AppRole {
            mount: "approle".into(),
            role_id_parameter: "/vault-lifecycle/prod/approle/health-probe/role-id".into(),
            secret_id_parameter: "/vault-lifecycle/prod/approle/health-probe/secret-id".into(),
        }
    );
}

#[test]
fn every_error_names_its_variable() {
    let cases: [(&[(&str, &str)], &str); 10] = [
        (&[("ASG_NAME", "a")], "CLUSTER_NAME"),
        (&[("CLUSTER_NAME", "prod")], "ASG_NAME"),
        (
            &[("CLUSTER_NAME", "Prod Cluster"), ("ASG_NAME", "a")],
            "CLUSTER_NAME",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("VAULT_PORT", "eighty"),
            ],
            "VAULT_PORT",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("VAULT_SCHEME", "ftp"),
            ],
            "VAULT_SCHEME",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("ALLOW_INSECURE_HTTP", "yes"),
            ],
            "ALLOW_INSECURE_HTTP",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("VAULT_AUTH", "token"),
            ],
            "VAULT_AUTH",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("SSM_PREFIX", "vault/"),
            ],
            "SSM_PREFIX",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("VAULT_CACERT_PEM", "x"),
            ],
            "VAULT_CACERT_PEM",
        ),
        (
            &[
                ("CLUSTER_NAME", "prod"),
                ("ASG_NAME", "a"),
                ("VAULT_INIT_TIMEOUT_SECS", "2"),
            ],
            "VAULT_INIT_TIMEOUT_SECS",
        ),
    ];
    for (pairs, variable) in cases {
        let err = ProbeConfig::from(&Env::from_pairs(pairs.iter().copied()))
            .expect_err(variable)
            .to_string();
        assert!(
            err.contains(variable),
            "error for {variable} does not name it: {err}"
        );
    }
}

#[test]
fn http_is_refused_without_the_lab_switch() {
    for allow in [None, Some("false")] {
        let env = Env::from_pairs(
            MINIMAL
                .into_iter()
                .chain([("VAULT_SCHEME", "http")])
                .chain(allow.map(|v| ("ALLOW_INSECURE_HTTP", v))),
        );
        let err = ProbeConfig::from(&env)
            .expect_err("http without ALLOW_INSECURE_HTTP=true")
            .to_string();
        assert!(
            err.contains("VAULT_SCHEME") && err.contains("ALLOW_INSECURE_HTTP=true"),
            "the error names the variable and the way out: {err}"
        );
    }
}

#[test]
fn http_with_the_lab_switch_is_accepted_and_logged_loudly() {
    let logs = crate::testing::capture_logs();
    let env = Env::from_pairs(
        MINIMAL
            .into_iter()
            .chain([("VAULT_SCHEME", "http"), ("ALLOW_INSECURE_HTTP", "true")]),
    );
    let config = ProbeConfig::from(&env).expect("http allowed for labs");
    assert_eq!(config.cluster.scheme, "http");
    let logged = logs.contents();
    assert!(
        logged.contains("WARN") && logged.contains("ALLOW_INSECURE_HTTP=true"),
        "a warning at start-up: {logged}"
    );
}

#[test]
fn a_node_is_addressed_by_its_private_ip_scheme_and_port() {
    let env = Env::from_pairs(MINIMAL.into_iter().chain([("VAULT_PORT", "8443")]));
    let config = ProbeConfig::from(&env).expect("config");
    let v4 = config.cluster.node_addr("10.0.1.5".parse().expect("ip"));
    assert_eq!(v4.as_str(), "https://10.0.1.5:8443");
    let v6 = config.cluster.node_addr("fd00::5".parse().expect("ip"));
    assert_eq!(v6.as_str(), "https://[fd00::5]:8443");
}

#[test]
fn aws_auth_defaults_its_role_to_the_function() {
    let env = Env::from_pairs(MINIMAL.into_iter().chain([("VAULT_AUTH", "aws")]));
    let config = ProbeConfig::from(&env).expect("aws auth config");
    assert_eq!(
        config.auth,
        AuthSettings::Aws {
            mount: "aws".into(),
            role: "health-probe".into(),
            server_id: None,
            sts_region: None,
        }
    );
}
