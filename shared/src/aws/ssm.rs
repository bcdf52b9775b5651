use async_trait::async_trait;
use aws_sdk_ssm::{
    operation::{
        delete_parameter::DeleteParameterError, get_parameter::GetParameterError,
        put_parameter::PutParameterError,
    },
    types::ParameterType,
};

use super::describe;
use crate::{
    cluster::ports::{ParameterError, ParameterStore, Stored},
    secret::Secret,
};

/// SSM Parameter Store, SecureString parameters decrypted on read.
#[derive(Clone, Debug)]
pub struct SsmParameters {
    client: aws_sdk_ssm::Client,
}

impl SsmParameters {
    /// Parameters read through `client`.
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }
}

impl SsmParameters {
    async fn get(
        &self,
        name: &str,
        decrypt: bool,
    ) -> Result<Option<aws_sdk_ssm::types::Parameter>, ParameterError> {
        let out = self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(decrypt)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.parameter),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(GetParameterError::ParameterNotFound(_))
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(ParameterError::Unavailable {
                name: name.to_owned(),
                reason: describe(e),
            }),
        }
    }
}

#[async_trait]
impl ParameterStore for SsmParameters {
    async fn secret(&self, name: &str) -> Result<Secret, ParameterError> {
        self.get(name, true)
            .await?
            .and_then(|p| p.value)
            .map(Secret::new)
            .ok_or_else(|| ParameterError::Missing {
                name: name.to_owned(),
            })
    }

    /// Without decryption: the caller needs `ssm:GetParameter` only, no `kms:Decrypt`.
    async fn exists(&self, name: &str) -> Result<bool, ParameterError> {
        Ok(self.get(name, false).await?.is_some())
    }

    async fn put_new_secret(
        &self,
        name: &str,
        value: &Secret,
        kms_key: &str,
    ) -> Result<Stored, ParameterError> {
        let sent = self
            .client
            .put_parameter()
            .name(name)
            .value(value.expose())
            .r#type(ParameterType::SecureString)
            .key_id(kms_key)
            .overwrite(false)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Stored::Written),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PutParameterError::ParameterAlreadyExists(_))
                ) =>
            {
                Ok(Stored::AlreadyExists)
            }
            // The SDK's error describes the request's outcome, never its parameters' values.
            Err(e) => Err(ParameterError::Unavailable {
                name: name.to_owned(),
                reason: describe(e),
            }),
        }
    }

    async fn replace_secret(
        &self,
        name: &str,
        value: &Secret,
        kms_key: &str,
    ) -> Result<(), ParameterError> {
        self.client
            .put_parameter()
            .name(name)
            .value(value.expose())
            .r#type(ParameterType::SecureString)
            .key_id(kms_key)
            .overwrite(true)
            .send()
            .await
            .map(|_| ())
            // The SDK's error describes the request's outcome, never its parameters' values.
            .map_err(|e| ParameterError::Unavailable {
                name: name.to_owned(),
                reason: describe(e),
            })
    }

    async fn delete(&self, name: &str) -> Result<(), ParameterError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(DeleteParameterError::ParameterNotFound(_))
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(ParameterError::Unavailable {
                name: name.to_owned(),
                reason: describe(e),
            }),
        }
    }
}
