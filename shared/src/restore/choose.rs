//! Which snapshot a request names, whether it may be restored here, and the shares a
//! snapshot of another cluster will need: all before anything is changed.

use super::{RestoreError, SnapshotRestore};
use crate::{
    cluster::{
        node::NodeApi,
        ports::{FleetNode, ParameterStore},
    },
    events::SnapshotSelector,
    ids::ClusterName,
    keys::{generations, read_shares, Generation, KeyLayout, SealKind, SharesMissing},
    secret::Secret,
    snapshots::{
        catalog::{BackupKind, CatalogEntry},
        store::{Location, StoredObject},
        verify::stored,
    },
};

/// The snapshot chosen, before it is checked.
pub(super) struct Chosen {
    pub(super) object: StoredObject,
    pub(super) location: Location,
    pub(super) entry: Option<CatalogEntry>,
    pub(super) source_cluster: String,
}

impl<N: NodeApi, P: ParameterStore> SnapshotRestore<N, P> {
    /// The snapshot the selector names, from the catalog (or, for an exact key and
    /// version, from the bucket when the catalog does not know it).
    /// `latest` and `as_of` skip safety snapshots unless `include_pre_restore`.
    pub(super) async fn choose(
        &self,
        selector: &SnapshotSelector,
        include_pre_restore: bool,
    ) -> Result<Chosen, RestoreError> {
        let cluster = &self.snapshots.cluster;
        let from_entry = |entry: CatalogEntry| Chosen {
            object: stored(&entry.object),
            location: entry.object.clone(),
            source_cluster: entry.cluster.clone(),
            entry: Some(entry),
        };
        let entries = |c: ClusterName| async move { self.catalog.entries(&c).await };
        let chosen = match selector {
            SnapshotSelector::Latest(_) => {
                let wanted =
                    |e: &CatalogEntry| include_pre_restore || e.kind != BackupKind::PreRestore;
                // One read for the newest; the whole catalog only when that is a safety
                // snapshot to skip.
                let newest = match self.catalog.newest(cluster).await? {
                    Some(e) if wanted(&e) => Some(e),
                    Some(_) => entries(cluster.clone()).await?.into_iter().rfind(wanted),
                    None => None,
                };
                from_entry(newest.ok_or_else(|| RestoreError::NoSnapshot {
                    cluster: cluster.to_string(),
                })?)
            }
            SnapshotSelector::AsOf { as_of } => {
                let mut all = entries(cluster.clone()).await?;
                all.retain(|e| include_pre_restore || e.kind != BackupKind::PreRestore);
                let first = all.first().map(|e| e.taken_at);
                let entry = all
                    .into_iter()
                    .rfind(|e| e.taken_at <= *as_of)
                    .ok_or_else(|| RestoreError::NoneAsOf {
                        cluster: cluster.to_string(),
                        as_of: *as_of,
                        first,
                    })?;
                from_entry(entry)
            }
            SnapshotSelector::Exact { key, version_id } => {
                let prefix = format!("{}/", self.snapshots.prefix);
                let source = key
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.split_once('/'))
                    .map(|(c, _)| c.to_owned())
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| RestoreError::OutsidePrefix {
                        key: key.clone(),
                        prefix: prefix.clone(),
                    })?;
                let object = StoredObject {
                    key: key.clone(),
                    version_id: Some(version_id.clone()),
                };
                let location = self.store.location_of(&object);
                let catalogued = match source.parse::<ClusterName>() {
                    Ok(c) => entries(c).await?.into_iter().find(|e| {
                        e.object.key == *key && e.object.version_id.as_deref() == Some(version_id)
                    }),
                    Err(_) => None,
                };
                match catalogued {
                    Some(entry) => from_entry(entry),
                    None => Chosen {
                        object,
                        location,
                        entry: None,
                        source_cluster: source,
                    },
                }
            }
        };
        if self.store.head(&chosen.object).await?.is_none() {
            let hint = match &chosen.entry {
                Some(entry) => Some(self.instead_of(entry).await?),
                None => None,
            };
            return Err(RestoreError::NoSuchVersion {
                object: chosen.location,
                hint,
            });
        }
        Ok(chosen)
    }

    /// What to restore instead of the catalogued snapshot `gone`, whose object is not in
    /// the bucket: the catalog's previous snapshot of the same cluster, and `gone`'s DR
    /// copy, each with the request that restores it.
    async fn instead_of(&self, gone: &CatalogEntry) -> Result<String, RestoreError> {
        let cluster: Option<ClusterName> = gone.cluster.parse().ok();
        let previous = match cluster {
            Some(c) => self
                .catalog
                .entries(&c)
                .await?
                .into_iter()
                .rfind(|e| e.taken_at < gone.taken_at && e.object != gone.object),
            None => None,
        };
        let request = |l: &Location| serde_json::json!({"snapshot": {"key": l.key, "version_id": l.version_id}});
        let mut hint = match previous {
            Some(p) => format!(
                "The catalog's previous snapshot is {} (taken {}): restore it with {}",
                p.object,
                p.taken_at.to_rfc3339(),
                request(&p.object)
            ),
            None => "The catalog holds no earlier snapshot of this cluster".to_owned(),
        };
        match &gone.dr_copy {
            Some(dr) => hint.push_str(&format!(
                ". This snapshot's DR copy is {dr}: run snapshot-restore in {} with {}",
                dr.region,
                request(dr)
            )),
            None => hint.push_str(". This snapshot has no DR copy"),
        }
        Ok(hint)
    }

    pub(super) async fn not_catalogued(
        &self,
        chosen: &Chosen,
    ) -> Result<RestoreError, RestoreError> {
        let catalogued = match chosen.source_cluster.parse::<ClusterName>() {
            Ok(c) => self
                .catalog
                .entries(&c)
                .await?
                .into_iter()
                .filter(|e| e.object.key == chosen.object.key)
                .filter_map(|e| e.object.version_id)
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(RestoreError::NotCatalogued {
            object: chosen.location.clone(),
            cluster: chosen.source_cluster.clone(),
            catalogued,
        })
    }

    /// The source cluster's shares, as many as this cluster's threshold (a standby
    /// cluster is initialised with its primary's share count and threshold).
    pub(super) async fn source_shares(
        &self,
        active: &FleetNode,
        source_cluster: &str,
        generation: Option<Generation>,
    ) -> Result<Vec<Secret>, RestoreError> {
        let status = self
            .vault
            .seal_status(&active.addr)
            .await
            .map_err(|source| RestoreError::SealStatus {
                node: active.addr.to_string(),
                source,
            })?;
        let kind = SealKind::of(&status).shares();
        let needed = status.threshold.max(1) as usize;
        let keys = KeyLayout::new(&self.settings.ssm_prefix, source_cluster);
        // The snapshot's own generation; the source's newest when its entry predates them.
        let generation = match generation {
            Some(generation) => generation,
            None => generations(&self.parameters, &keys, kind).await?.in_force,
        };
        read_shares(&self.parameters, &keys, (kind, generation), needed, needed)
            .await
            .map_err(|e| match e {
                SharesMissing::Missing {
                    folder,
                    needed,
                    found,
                    ..
                } => RestoreError::SourceSharesMissing {
                    source_cluster: source_cluster.to_owned(),
                    path: folder,
                    needed,
                    found,
                },
                SharesMissing::Parameter(e) => e.into(),
            })
    }

    /// Refuses a restore of this cluster's snapshot taken under `generation` when fewer
    /// of that generation's shares are stored than the threshold: once restored, the
    /// cluster would unseal with nothing else. Only whether they exist is read.
    pub(super) async fn generation_kept(
        &self,
        active: &FleetNode,
        generation: Generation,
    ) -> Result<(), RestoreError> {
        let status = self
            .vault
            .seal_status(&active.addr)
            .await
            .map_err(|source| RestoreError::SealStatus {
                node: active.addr.to_string(),
                source,
            })?;
        let kind = SealKind::of(&status).shares();
        let needed = status.threshold.max(1) as usize;
        let keys = KeyLayout::new(&self.settings.ssm_prefix, self.snapshots.cluster.as_str());
        let mut found = 0;
        for n in 1..=(status.shares as usize).max(needed) {
            if self
                .parameters
                .exists(&keys.generation_share(kind, generation, n))
                .await?
            {
                found += 1;
            }
        }
        if found < needed {
            return Err(RestoreError::GenerationSharesMissing {
                generation,
                path: keys.generation(kind, generation),
                needed,
                found,
            });
        }
        Ok(())
    }
}
