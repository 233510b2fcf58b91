//! `Via`: an [`Ontap`] that decides, before every call, which client serves it.
//!
//! Wrappers that only need to act *before* a call — build a client lazily, bring a simulator up
//! to a virtual clock, refuse calls while a test switch is off — implement [`Resolve`] instead of
//! delegating every method of the trait by hand.

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    ClusterInfo, LicenseState, LunInfo, NewSnapshot, Ontap, OntapError, ScheduleInfo, SnapshotInfo,
    SnapshotPolicyInfo, VolumeInfo, VolumeRef,
};

/// Picks the client for the next call, or fails it.
pub trait Resolve: Send + Sync {
    fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError>;
}

/// An [`Ontap`] for cluster `name` whose every call goes through `R::resolve`.
pub struct Via<R> {
    name: String,
    resolver: R,
}

impl<R: Resolve> Via<R> {
    pub fn new(name: impl Into<String>, resolver: R) -> Via<R> {
        Via {
            name: name.into(),
            resolver,
        }
    }

    pub fn resolver(&self) -> &R {
        &self.resolver
    }
}

#[async_trait]
impl<R: Resolve> Ontap for Via<R> {
    fn cluster_name(&self) -> &str {
        &self.name
    }
    async fn cluster(&self) -> Result<ClusterInfo, OntapError> {
        self.resolver.resolve()?.cluster().await
    }
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError> {
        self.resolver.resolve()?.volumes().await
    }
    async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError> {
        self.resolver.resolve()?.snapshot_policies().await
    }
    async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError> {
        self.resolver.resolve()?.schedules().await
    }
    async fn license(&self, package: &str) -> Result<LicenseState, OntapError> {
        self.resolver.resolve()?.license(package).await
    }
    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError> {
        self.resolver.resolve()?.snapshots().await
    }
    async fn luns(&self) -> Result<Vec<LunInfo>, OntapError> {
        self.resolver.resolve()?.luns().await
    }
    async fn create_snapshot(
        &self,
        volume: &VolumeRef,
        new: &NewSnapshot<'_>,
    ) -> Result<SnapshotInfo, OntapError> {
        self.resolver.resolve()?.create_snapshot(volume, new).await
    }
    async fn delete_snapshot(
        &self,
        volume: &VolumeRef,
        snapshot_uuid: &str,
        snapshot_name: &str,
    ) -> Result<(), OntapError> {
        self.resolver
            .resolve()?
            .delete_snapshot(volume, snapshot_uuid, snapshot_name)
            .await
    }
    async fn clone_lun_flexclone(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        self.resolver
            .resolve()?
            .clone_lun_flexclone(volume, snapshot_name, source_lun, clone_path)
            .await
    }
    async fn clone_lun_snaprestore(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        self.resolver
            .resolve()?
            .clone_lun_snaprestore(volume, snapshot_name, source_lun, clone_path)
            .await
    }
    async fn delete_lun(
        &self,
        lun_uuid: &str,
        lun_path: &str,
        allow_delete_while_mapped: bool,
    ) -> Result<(), OntapError> {
        self.resolver
            .resolve()?
            .delete_lun(lun_uuid, lun_path, allow_delete_while_mapped)
            .await
    }
}
