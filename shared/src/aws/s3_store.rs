use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::{
    primitives::ByteStream,
    types::{CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption, Tag, Tagging},
};
use bytes::Bytes;

use super::{describe, describe_any};
use crate::snapshots::store::{
    ChunkSource, Location, ObjectBody, ObjectInfo, PartUpload, SnapshotObjects, SnapshotStore,
    StoreError, StoredObject,
};

/// A versioned S3 bucket, objects encrypted with SSE-KMS under `kms_key` (or the
/// bucket's default encryption when `None`).
#[derive(Clone, Debug)]
pub struct S3SnapshotStore {
    pub(super) client: aws_sdk_s3::Client,
    region: String,
    pub(super) bucket: String,
    pub(super) kms_key: Option<String>,
}

impl S3SnapshotStore {
    /// Snapshots in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: String, kms_key: Option<String>) -> Self {
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        Self {
            client,
            region,
            bucket,
            kms_key,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn error(
        &self,
        action: &'static str,
        key: &str,
        reason: impl Into<crate::errors::ServiceFailure>,
    ) -> StoreError {
        StoreError {
            action,
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            reason: reason.into(),
        }
    }

    /// A store with a client built from `sdk`. With an endpoint override
    /// (`AWS_ENDPOINT_URL`, a local S3), bucket names go in the path, not the host name.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bucket: String, kms_key: Option<String>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(config), bucket, kms_key)
    }
}

#[async_trait]
impl SnapshotStore for S3SnapshotStore {
    async fn begin(
        &self,
        key: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Box<dyn PartUpload>, StoreError> {
        Ok(Box::new(self.start_upload(key, metadata).await?))
    }
}

/// S3 copies at most 5 GiB in one request; past that, parts of this size.
const COPY_PART_SIZE: u64 = 512 << 20;

struct S3Body {
    body: ByteStream,
    bucket: String,
    key: String,
}

#[async_trait]
impl ChunkSource for S3Body {
    type Error = StoreError;
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, StoreError> {
        match self.body.next().await {
            None => Ok(None),
            Some(Ok(bytes)) => Ok(Some(bytes)),
            Some(Err(e)) => Err(StoreError {
                action: "read",
                bucket: self.bucket.clone(),
                key: self.key.clone(),
                reason: describe_any(e),
            }),
        }
    }
}

/// S3 answered 404: no such key, or no such version of it.
/// 404, or, when a version id was given, the 400 (`InvalidArgument`) S3 answers for a
/// version id that cannot exist: either way no such object version, never a reason to
/// retry.
fn is_not_found<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    object: &StoredObject,
) -> bool {
    e.raw_response().is_some_and(|r| {
        let status = r.status().as_u16();
        status == 404 || (status == 400 && object.version_id.is_some())
    })
}

#[async_trait]
impl SnapshotObjects for S3SnapshotStore {
    fn location_of(&self, object: &StoredObject) -> Location {
        Location {
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            key: object.key.clone(),
            version_id: object.version_id.clone(),
        }
    }

    async fn head(&self, object: &StoredObject) -> Result<Option<ObjectInfo>, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await;
        match out {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                metadata: out
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(e) if is_not_found(&e, object) => Ok(None),
            Err(e) => Err(self.error("read the metadata of", &object.key, describe(e))),
        }
    }

    async fn open(&self, object: &StoredObject) -> Result<Box<ObjectBody>, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .send()
            .await
            .map_err(|e| self.error("read", &object.key, describe(e)))?;
        Ok(Box::new(S3Body {
            body: out.body,
            bucket: self.bucket.clone(),
            key: object.key.clone(),
        }))
    }

    async fn tag(
        &self,
        object: &StoredObject,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let tag_set = tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error("tag", &object.key, describe_any(e)))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tag_set))
            .build()
            .map_err(|e| self.error("tag", &object.key, describe_any(e)))?;
        self.client
            .put_object_tagging()
            .bucket(&self.bucket)
            .key(&object.key)
            .set_version_id(object.version_id.clone())
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| self.error("tag", &object.key, describe(e)))?;
        Ok(())
    }

    async fn copy_in(
        &self,
        source: &Location,
        size: u64,
        multipart_above: u64,
    ) -> Result<StoredObject, StoreError> {
        let mut copy_source = format!("{}/{}", source.bucket, source.key);
        if let Some(version) = &source.version_id {
            copy_source.push_str("?versionId=");
            copy_source.push_str(version);
        }
        let key = source.key.as_str();
        if size <= multipart_above {
            let mut copy = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(key)
                .copy_source(&copy_source);
            if let Some(kms_key) = &self.kms_key {
                copy = copy
                    .server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(kms_key);
            }
            let out = copy
                .send()
                .await
                .map_err(|e| self.error("copy into", key, describe(e)))?;
            return Ok(StoredObject {
                key: key.to_owned(),
                version_id: out.version_id().map(str::to_owned),
            });
        }
        // Metadata is not carried by a multipart copy: read it from the source.
        let metadata = self
            .client
            .head_object()
            .bucket(&source.bucket)
            .key(key)
            .set_version_id(source.version_id.clone())
            .send()
            .await
            .map_err(|e| self.error("read the metadata of the source of", key, describe(e)))?
            .metadata()
            .cloned()
            .unwrap_or_default();
        let metadata: BTreeMap<String, String> = metadata.into_iter().collect();
        let mut upload = self.start_upload(key, &metadata).await?;
        let upload_id = upload.upload_id.clone();
        let mut parts = Vec::new();
        let mut start = 0u64;
        let outcome = async {
            while start < size {
                let end = (start + COPY_PART_SIZE).min(size) - 1;
                let number = parts.len() as i32 + 1;
                let out = self
                    .client
                    .upload_part_copy()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .copy_source(&copy_source)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .send()
                    .await
                    .map_err(|e| self.error("copy a part into", key, describe(e)))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(
                            out.copy_part_result()
                                .and_then(|r| r.e_tag())
                                .map(str::to_owned),
                        )
                        .build(),
                );
                start = end + 1;
            }
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = outcome {
            let _ = Box::new(upload).abort().await;
            return Err(e);
        }
        upload.parts = parts;
        Box::new(upload).complete().await
    }

    async fn delete_versions(&self, objects: &[StoredObject]) -> Result<(), StoreError> {
        for batch in objects.chunks(1000) {
            let ids = batch
                .iter()
                .map(|o| {
                    ObjectIdentifier::builder()
                        .key(&o.key)
                        .set_version_id(o.version_id.clone())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.error("delete", &batch[0].key, describe_any(e)))?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| self.error("delete", &batch[0].key, describe_any(e)))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.error("delete", &batch[0].key, describe(e)))?;
            if let Some(failed) = out.errors().first() {
                return Err(self.error(
                    "delete",
                    failed.key().unwrap_or_default(),
                    format!(
                        "{} of {} deletions failed; first: {} {}",
                        out.errors().len(),
                        batch.len(),
                        failed.code().unwrap_or_default(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}
