//! Vault's `aws` auth method, IAM flavour: the function proves who it is by handing
//! Vault a signed `sts:GetCallerIdentity` request, which Vault replays to STS. No secret
//! is stored anywhere; the signature is valid for minutes and is treated as a secret.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::{
    http_request::{sign, SignableBody, SignableRequest, SigningSettings},
    sign::v4,
};
use base64::{engine::general_purpose::STANDARD, Engine};

use crate::{
    cluster::ports::{CallerIdentitySigner, IamLoginRequest, IdentityError},
    secret::Secret,
};

const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// Signs `GetCallerIdentity` with the function's own credentials (its execution role).
#[derive(Clone, Debug)]
pub struct StsCallerIdentity {
    credentials: SharedCredentialsProvider,
    region: String,
}

impl StsCallerIdentity {
    /// Signs for the global STS endpoint (`us-east-1`), which Vault's aws auth uses unless
    /// its `sts_region` says otherwise; pass that region then.
    pub fn new(credentials: SharedCredentialsProvider, region: Option<String>) -> Self {
        Self {
            credentials,
            region: region.unwrap_or_else(|| "us-east-1".into()),
        }
    }

    fn endpoint(&self) -> String {
        if self.region == "us-east-1" {
            "https://sts.amazonaws.com/".into()
        } else {
            format!("https://sts.{}.amazonaws.com/", self.region)
        }
    }
}

fn failed(reason: String) -> IdentityError {
    IdentityError { reason }
}

#[async_trait]
impl CallerIdentitySigner for StsCallerIdentity {
    async fn sign_caller_identity(
        &self,
        server_id: Option<&str>,
    ) -> Result<IamLoginRequest, IdentityError> {
        let credentials = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed(e.to_string()))?
            .into();
        let url = self.endpoint();
        let host = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let mut headers = vec![
            ("host", host),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
            ),
        ];
        if let Some(id) = server_id {
            headers.push(("x-vault-aws-iam-server-id", id.to_owned()));
        }
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(BODY.as_bytes()),
        )
        .map_err(|e| failed(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| failed(e.to_string()))?
            .into_parts();
        let (added, _query) = instructions.into_parts();
        let mut all: serde_json::Map<String, serde_json::Value> = headers
            .into_iter()
            .map(|(k, v)| (k.to_owned(), vec![v].into()))
            .collect();
        for header in added {
            all.insert(
                header.name().to_owned(),
                vec![header.value().to_owned()].into(),
            );
        }
        Ok(IamLoginRequest {
            method: "POST",
            url: STANDARD.encode(&url),
            body: STANDARD.encode(BODY),
            headers: Secret::new(STANDARD.encode(serde_json::Value::Object(all).to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_credential_types::Credentials;

    use super::*;
    use crate::testing::capture_logs;

    fn decode(text: &str) -> String {
        String::from_utf8(STANDARD.decode(text).expect("base64")).expect("utf-8")
    }

    #[tokio::test]
    async fn signs_get_caller_identity_as_vault_expects_and_logs_no_key() {
        let logs = capture_logs();
        let credentials = Credentials::new(
            "AKIDCANARY",
            "secret-key-canary-4f1e",
            Some("session-canary-9d".into()),
            None,
            "test",
        );
        let signer = StsCallerIdentity::new(SharedCredentialsProvider::new(credentials), None);
        let request = signer
            .sign_caller_identity(Some("vault.example.com"))
            .await
            .expect("signed");
        assert_eq!(request.method, "POST");
        assert_eq!(decode(&request.url), "https://sts.amazonaws.com/");
        assert_eq!(decode(&request.body), BODY);
        let headers: serde_json::Value =
            serde_json::from_str(&decode(request.headers.expose())).expect("JSON");
        let authorization = headers["authorization"][0].as_str().expect("authorization");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDCANARY/"),
            "{authorization}"
        );
        assert!(
            authorization.contains("/us-east-1/sts/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("x-vault-aws-iam-server-id"),
            "the server id is signed: {authorization}"
        );
        assert_eq!(headers["x-vault-aws-iam-server-id"][0], "vault.example.com");
        assert_eq!(headers["x-amz-security-token"][0], "session-canary-9d");
        for text in [logs.contents(), format!("{request:?}")] {
            assert!(
                !text.contains("secret-key-canary-4f1e"),
                "secret key leaked: {text}"
            );
            assert!(
                !text.contains("session-canary-9d"),
                "session token leaked: {text}"
            );
        }
    }

    #[tokio::test]
    async fn a_regional_sts_endpoint_is_signed_for_its_region() {
        let credentials = Credentials::new("AKID", "secret", None, None, "test");
        let signer = StsCallerIdentity::new(
            SharedCredentialsProvider::new(credentials),
            Some("eu-west-1".into()),
        );
        let request = signer.sign_caller_identity(None).await.expect("signed");
        assert_eq!(decode(&request.url), "https://sts.eu-west-1.amazonaws.com/");
        let headers: serde_json::Value =
            serde_json::from_str(&decode(request.headers.expose())).expect("JSON");
        assert!(headers["authorization"][0]
            .as_str()
            .is_some_and(|a| a.contains("/eu-west-1/sts/")));
        assert!(headers.get("x-vault-aws-iam-server-id").is_none());
    }
}
