//! The multipart upload of a snapshot into S3: started with the object's metadata and
//! encryption, fed part by part, then completed or aborted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::{
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption},
};
use bytes::Bytes;

use super::{describe, S3SnapshotStore};
use crate::snapshots::store::{PartUpload, StoreError, StoredObject};

pub(super) struct S3Upload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    pub(super) upload_id: String,
    pub(super) parts: Vec<CompletedPart>,
}

impl S3Upload {
    fn error(
        &self,
        action: &'static str,
        reason: impl Into<crate::errors::ServiceFailure>,
    ) -> StoreError {
        StoreError {
            action,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            reason: reason.into(),
        }
    }
}

impl S3SnapshotStore {
    pub(super) async fn start_upload(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<S3Upload, StoreError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(metadata.clone().into_iter().collect()));
        if let Some(kms_key) = &self.kms_key {
            create = create
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms_key);
        }
        let out = create.send().await.map_err(|e| StoreError {
            action: "start the upload of",
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            reason: describe(e),
        })?;
        let upload_id = out
            .upload_id()
            .map(str::to_owned)
            .ok_or_else(|| StoreError {
                action: "start the upload of",
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                reason: "S3 returned no upload id".into(),
            })?;
        Ok(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            parts: Vec::new(),
        })
    }
}

#[async_trait]
impl PartUpload for S3Upload {
    async fn part(&mut self, bytes: Bytes) -> Result<(), StoreError> {
        let number = self.parts.len() as i32 + 1;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("upload a part of", describe(e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    async fn complete(self: Box<Self>) -> Result<StoredObject, StoreError> {
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.error("complete", describe(e)))?;
        Ok(StoredObject {
            key: self.key.clone(),
            version_id: out.version_id().map(str::to_owned),
        })
    }

    async fn abort(self: Box<Self>) -> Result<(), StoreError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map_err(|e| self.error("abort the upload of", describe(e)))?;
        Ok(())
    }
}
