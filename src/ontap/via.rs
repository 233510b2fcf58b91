//! `Via`: the one decorator of [`Ontap`]. Every call goes through a [`Layer`], which is told the
//! call before it runs (and chooses the client that serves it, or refuses it) and its outcome and
//! elapsed time after.
//!
//! Whatever wraps a cluster client is a layer, not a hand-written forwarder of every method:
//! counting and timing calls (the agent's metrics), following a virtual clock and measuring the
//! world (`simulate`'s meter, the embedded simulator), building a REST client lazily, refusing
//! calls (a test's switch, a leadership fence). Layers stack: a layer's client is often another
//! `Via`. A layer that only picks the client implements the shorter [`Resolve`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    ClusterInfo, LicenseState, LunInfo, NewSnapshot, Ontap, OntapError, ScheduleInfo, SnapshotInfo,
    SnapshotPolicyInfo, VolumeInfo, VolumeRef, VolumeSettings,
};

/// One method of the [`Ontap`] trait (other than `cluster_name`), as a layer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Call {
    Cluster,
    Volumes,
    SnapshotPolicies,
    Schedules,
    License,
    Snapshots,
    Luns,
    VolumeSnapshots,
    VolumeLuns,
    VolumeSettings,
    CreateSnapshot,
    DeleteSnapshot,
    CloneLunFlexclone,
    CloneLunSnaprestore,
    DeleteLun,
}

impl Call {
    /// Every call, in the trait's order.
    pub const ALL: [Call; 15] = [
        Call::Cluster,
        Call::Volumes,
        Call::SnapshotPolicies,
        Call::Schedules,
        Call::License,
        Call::Snapshots,
        Call::Luns,
        Call::VolumeSnapshots,
        Call::VolumeLuns,
        Call::VolumeSettings,
        Call::CreateSnapshot,
        Call::DeleteSnapshot,
        Call::CloneLunFlexclone,
        Call::CloneLunSnaprestore,
        Call::DeleteLun,
    ];

    /// The method's name: the `method` label of the ONTAP request metrics.
    pub fn name(self) -> &'static str {
        match self {
            Call::Cluster => "cluster",
            Call::Volumes => "volumes",
            Call::SnapshotPolicies => "snapshot_policies",
            Call::Schedules => "schedules",
            Call::License => "license",
            Call::Snapshots => "snapshots",
            Call::Luns => "luns",
            Call::VolumeSnapshots => "volume_snapshots",
            Call::VolumeLuns => "volume_luns",
            Call::VolumeSettings => "volume_settings",
            Call::CreateSnapshot => "create_snapshot",
            Call::DeleteSnapshot => "delete_snapshot",
            Call::CloneLunFlexclone => "clone_lun_flexclone",
            Call::CloneLunSnaprestore => "clone_lun_snaprestore",
            Call::DeleteLun => "delete_lun",
        }
    }

    /// The call may change the cluster (creates, clones, deletes); the others only read.
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Call::CreateSnapshot
                | Call::DeleteSnapshot
                | Call::CloneLunFlexclone
                | Call::CloneLunSnaprestore
                | Call::DeleteLun
        )
    }
}

/// What a [`Via`] does around every call.
#[async_trait]
pub trait Layer: Send + Sync {
    /// Runs before `call`: the client that serves it (usually the layer's inner client, after
    /// whatever the layer does first), or the error that refuses it. A refused call ends here:
    /// [`Layer::after`] is not told about it.
    async fn before(&self, call: Call) -> Result<Arc<dyn Ontap>, OntapError>;

    /// Runs after a call that [`Layer::before`] let through: its outcome and how long the client
    /// that served it took.
    fn after(&self, _call: Call, _outcome: Result<(), &OntapError>, _elapsed: Duration) {}

    /// Runs when [`Layer::before`] let a mutating call through, with what the call may change
    /// (whatever its outcome: a call whose answer was lost may have changed it), for a layer
    /// that tracks which volumes changed since they were last listed.
    fn changes(&self, _target: Target<'_>) {}
}

/// What a mutating call may change, as [`Layer::changes`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A volume's snapshots or LUNs.
    Volume(&'a VolumeRef),
    /// The LUN at this path (`/vol/<volume>/<lun>`), in an SVM the call does not name.
    Lun(&'a str),
}

/// The short form of a [`Layer`] that only picks the client for the next call, or fails it (a
/// client built on first use, a simulator brought to a clock first, a switch).
pub trait Resolve: Send + Sync {
    fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError>;
}

#[async_trait]
impl<R: Resolve> Layer for R {
    async fn before(&self, _call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
        self.resolve()
    }
}

/// An [`Ontap`] for cluster `name` whose every call goes through the layer `L`.
pub struct Via<L> {
    name: String,
    layer: L,
}

/// A call let through by the layer: who serves it and since when.
struct Entered {
    call: Call,
    next: Arc<dyn Ontap>,
    start: Instant,
}

impl<L: Layer> Via<L> {
    pub fn new(name: impl Into<String>, layer: L) -> Via<L> {
        Via {
            name: name.into(),
            layer,
        }
    }

    pub fn layer(&self) -> &L {
        &self.layer
    }

    async fn enter(&self, call: Call) -> Result<Entered, OntapError> {
        let next = self.layer.before(call).await?;
        Ok(Entered {
            call,
            next,
            start: Instant::now(),
        })
    }

    fn leave<T>(&self, entered: Entered, r: Result<T, OntapError>) -> Result<T, OntapError> {
        let elapsed = entered.start.elapsed();
        self.layer
            .after(entered.call, r.as_ref().map(|_| ()), elapsed);
        r
    }
}

#[async_trait]
impl<L: Layer> Ontap for Via<L> {
    fn cluster_name(&self) -> &str {
        &self.name
    }
    async fn cluster(&self) -> Result<ClusterInfo, OntapError> {
        let e = self.enter(Call::Cluster).await?;
        let r = e.next.cluster().await;
        self.leave(e, r)
    }
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError> {
        let e = self.enter(Call::Volumes).await?;
        let r = e.next.volumes().await;
        self.leave(e, r)
    }
    async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError> {
        let e = self.enter(Call::SnapshotPolicies).await?;
        let r = e.next.snapshot_policies().await;
        self.leave(e, r)
    }
    async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError> {
        let e = self.enter(Call::Schedules).await?;
        let r = e.next.schedules().await;
        self.leave(e, r)
    }
    async fn license(&self, package: &str) -> Result<LicenseState, OntapError> {
        let e = self.enter(Call::License).await?;
        let r = e.next.license(package).await;
        self.leave(e, r)
    }
    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError> {
        let e = self.enter(Call::Snapshots).await?;
        let r = e.next.snapshots().await;
        self.leave(e, r)
    }
    async fn luns(&self) -> Result<Vec<LunInfo>, OntapError> {
        let e = self.enter(Call::Luns).await?;
        let r = e.next.luns().await;
        self.leave(e, r)
    }
    async fn volume_snapshots(
        &self,
        volumes: &[VolumeRef],
    ) -> Result<Vec<SnapshotInfo>, OntapError> {
        let e = self.enter(Call::VolumeSnapshots).await?;
        let r = e.next.volume_snapshots(volumes).await;
        self.leave(e, r)
    }
    async fn volume_luns(&self, volumes: &[VolumeRef]) -> Result<Vec<LunInfo>, OntapError> {
        let e = self.enter(Call::VolumeLuns).await?;
        let r = e.next.volume_luns(volumes).await;
        self.leave(e, r)
    }
    async fn volume_settings(&self) -> Result<Vec<VolumeSettings>, OntapError> {
        let e = self.enter(Call::VolumeSettings).await?;
        let r = e.next.volume_settings().await;
        self.leave(e, r)
    }
    async fn create_snapshot(
        &self,
        volume: &VolumeRef,
        new: &NewSnapshot<'_>,
    ) -> Result<SnapshotInfo, OntapError> {
        let e = self.enter(Call::CreateSnapshot).await?;
        self.layer.changes(Target::Volume(volume));
        let r = e.next.create_snapshot(volume, new).await;
        self.leave(e, r)
    }
    async fn delete_snapshot(
        &self,
        volume: &VolumeRef,
        snapshot_uuid: &str,
        snapshot_name: &str,
    ) -> Result<(), OntapError> {
        let e = self.enter(Call::DeleteSnapshot).await?;
        self.layer.changes(Target::Volume(volume));
        let r = e
            .next
            .delete_snapshot(volume, snapshot_uuid, snapshot_name)
            .await;
        self.leave(e, r)
    }
    async fn clone_lun_flexclone(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        let e = self.enter(Call::CloneLunFlexclone).await?;
        self.layer.changes(Target::Volume(volume));
        let r = e
            .next
            .clone_lun_flexclone(volume, snapshot_name, source_lun, clone_path)
            .await;
        self.leave(e, r)
    }
    async fn clone_lun_snaprestore(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        let e = self.enter(Call::CloneLunSnaprestore).await?;
        self.layer.changes(Target::Volume(volume));
        let r = e
            .next
            .clone_lun_snaprestore(volume, snapshot_name, source_lun, clone_path)
            .await;
        self.leave(e, r)
    }
    async fn delete_lun(
        &self,
        lun_uuid: &str,
        lun_path: &str,
        allow_delete_while_mapped: bool,
    ) -> Result<(), OntapError> {
        let e = self.enter(Call::DeleteLun).await?;
        self.layer.changes(Target::Lun(lun_path));
        let r = e
            .next
            .delete_lun(lun_uuid, lun_path, allow_delete_while_mapped)
            .await;
        self.leave(e, r)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers every call with a transport error naming the call; the layers under test only
    /// record what they are told.
    struct Bottom;

    impl Bottom {
        fn fail(call: &str) -> OntapError {
            OntapError::Transport {
                cluster: "c".into(),
                context: call.into(),
                source: "bottom".into(),
            }
        }
    }

    #[async_trait]
    impl Ontap for Bottom {
        fn cluster_name(&self) -> &str {
            "c"
        }
        async fn cluster(&self) -> Result<ClusterInfo, OntapError> {
            Err(Bottom::fail("cluster"))
        }
        async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError> {
            Ok(Vec::new())
        }
        async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError> {
            Err(Bottom::fail("snapshot_policies"))
        }
        async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError> {
            Err(Bottom::fail("schedules"))
        }
        async fn license(&self, _: &str) -> Result<LicenseState, OntapError> {
            Err(Bottom::fail("license"))
        }
        async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError> {
            Err(Bottom::fail("snapshots"))
        }
        async fn luns(&self) -> Result<Vec<LunInfo>, OntapError> {
            Err(Bottom::fail("luns"))
        }
        async fn volume_snapshots(&self, _: &[VolumeRef]) -> Result<Vec<SnapshotInfo>, OntapError> {
            Err(Bottom::fail("volume_snapshots"))
        }
        async fn volume_luns(&self, _: &[VolumeRef]) -> Result<Vec<LunInfo>, OntapError> {
            Err(Bottom::fail("volume_luns"))
        }
        async fn volume_settings(&self) -> Result<Vec<VolumeSettings>, OntapError> {
            Err(Bottom::fail("volume_settings"))
        }
        async fn create_snapshot(
            &self,
            _: &VolumeRef,
            _: &NewSnapshot<'_>,
        ) -> Result<SnapshotInfo, OntapError> {
            Err(Bottom::fail("create_snapshot"))
        }
        async fn delete_snapshot(&self, _: &VolumeRef, _: &str, _: &str) -> Result<(), OntapError> {
            Err(Bottom::fail("delete_snapshot"))
        }
        async fn clone_lun_flexclone(
            &self,
            _: &VolumeRef,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<LunInfo, OntapError> {
            Err(Bottom::fail("clone_lun_flexclone"))
        }
        async fn clone_lun_snaprestore(
            &self,
            _: &VolumeRef,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<LunInfo, OntapError> {
            Err(Bottom::fail("clone_lun_snaprestore"))
        }
        async fn delete_lun(&self, _: &str, _: &str, _: bool) -> Result<(), OntapError> {
            Err(Bottom::fail("delete_lun"))
        }
    }

    /// Writes `tag before call` and `tag after call outcome` to a shared log; refuses mutating
    /// calls when `fence` is set.
    struct Recorder {
        tag: &'static str,
        inner: Arc<dyn Ontap>,
        log: Arc<Mutex<Vec<String>>>,
        fence: bool,
    }

    #[async_trait]
    impl Layer for Recorder {
        async fn before(&self, call: Call) -> Result<Arc<dyn Ontap>, OntapError> {
            self.log
                .lock()
                .unwrap()
                .push(format!("{} before {}", self.tag, call.name()));
            if self.fence && call.mutates() {
                return Err(Bottom::fail("fenced"));
            }
            Ok(self.inner.clone())
        }
        fn after(&self, call: Call, outcome: Result<(), &OntapError>, _: Duration) {
            let outcome = match outcome {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            self.log
                .lock()
                .unwrap()
                .push(format!("{} after {} {outcome}", self.tag, call.name()));
        }
    }

    fn stack(fence: bool) -> (Via<Recorder>, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let inner = Arc::new(Via::new(
            "c",
            Recorder {
                tag: "inner",
                inner: Arc::new(Bottom),
                log: log.clone(),
                fence,
            },
        ));
        let outer = Via::new(
            "c",
            Recorder {
                tag: "outer",
                inner,
                log: log.clone(),
                fence: false,
            },
        );
        (outer, log)
    }

    #[tokio::test]
    async fn stacked_layers_see_each_call_outside_in_then_inside_out() {
        let (client, log) = stack(false);
        assert!(client.volumes().await.is_ok());
        let err = client.luns().await.unwrap_err();
        assert_eq!(err.to_string(), "cluster c: luns");
        assert_eq!(
            *log.lock().unwrap(),
            [
                "outer before volumes",
                "inner before volumes",
                "inner after volumes ok",
                "outer after volumes ok",
                "outer before luns",
                "inner before luns",
                "inner after luns cluster c: luns",
                "outer after luns cluster c: luns",
            ]
        );
    }

    #[tokio::test]
    async fn a_refusing_layer_ends_the_call_and_the_outer_layer_sees_the_refusal() {
        let (client, log) = stack(true);
        let vref = VolumeRef {
            uuid: "u".into(),
            name: "v".into(),
            svm: "s".into(),
        };
        let err = client.delete_lun("u", "/vol/v/l", false).await.unwrap_err();
        assert_eq!(err.to_string(), "cluster c: fenced");
        assert!(client
            .create_snapshot(&vref, &NewSnapshot::new("n", "c"))
            .await
            .is_err());
        assert_eq!(
            *log.lock().unwrap(),
            [
                "outer before delete_lun",
                "inner before delete_lun",
                "outer after delete_lun cluster c: fenced",
                "outer before create_snapshot",
                "inner before create_snapshot",
                "outer after create_snapshot cluster c: fenced",
            ]
        );
    }

    #[test]
    fn every_call_has_its_own_name_and_only_the_five_changes_mutate() {
        let names: std::collections::BTreeSet<_> = Call::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Call::ALL.len());
        assert_eq!(Call::ALL.iter().filter(|c| c.mutates()).count(), 5);
    }
}
