//! Asking snapshot-backup for a snapshot: an asynchronous Lambda invocation (`Event`)
//! with `{"reason": ...}`, the request snapshot-backup takes directly.

use async_trait::async_trait;
use aws_sdk_lambda::{primitives::Blob, types::InvocationType};

use super::describe;
use crate::cluster::ports::{BackupTrigger, TriggerError};

/// snapshot-backup, invoked through the Lambda API.
#[derive(Clone, Debug)]
pub struct LambdaBackupTrigger {
    client: aws_sdk_lambda::Client,
    function: String,
}

impl LambdaBackupTrigger {
    /// Invokes `function` (name or ARN) through the SDK configuration's Lambda endpoint.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, function: String) -> Self {
        Self {
            client: aws_sdk_lambda::Client::new(sdk),
            function,
        }
    }
}

#[async_trait]
impl BackupTrigger for LambdaBackupTrigger {
    async fn request_backup(&self, reason: &str) -> Result<(), TriggerError> {
        let payload = serde_json::json!({ "reason": reason }).to_string();
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| TriggerError {
                function: self.function.clone(),
                reason: describe(e),
            })
    }
}
