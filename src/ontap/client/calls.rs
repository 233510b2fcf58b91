//! The [`Ontap`] trait over the REST client: each call's path, `fields=` and target, and creates
//! and deletes that stay idempotent across a retry whose first answer was lost.

use reqwest::Method;
use serde_json::{json, Value};

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use super::{
    Failure, Fields, RestClient, CLUSTER_FIELDS, LICENSE_FIELDS, LUN_BORN_FIELDS, LUN_FIELDS,
    POLICY_FIELDS, SCHEDULE_FIELDS, SNAPSHOT_FIELDS, VOLUME_FIELDS, VOLUME_SETTINGS_FIELDS,
};
use crate::ontap::wire::{
    ClusterWire, Collection, LicensePackageWire, LunWire, ScheduleWire, SnapshotPolicyWire,
    SnapshotWire, VolumeSettingsWire, VolumeWire,
};
use crate::ontap::{
    lun_in_snapshot, path_in_volume, plain_uuid, ClusterInfo, Interner, LicenseState, LunInfo,
    NewSnapshot, Ontap, OntapError, ScheduleInfo, SnapshotInfo, SnapshotPolicyInfo, VolumeInfo,
    VolumeRef, VolumeSettings, VOLUMES_PER_QUERY,
};

/// "A snapshot with that name already exists" (POST snapshot, reference §2.4).
const SNAPSHOT_EXISTS: u64 = 525_059;
/// "A LUN or namespace already exists at path" (5374242) and "destination exists" (1260136),
/// the answers to a LUN create onto a taken path (reference §3.2). ONTAP documents no code of
/// its own for a SnapRestore onto a taken path (§3.4 names only the generic 524511); the
/// simulator answers 5374242 there, as a LUN create does.
const LUN_EXISTS: [u64; 2] = [5_374_242, 1_260_136];

impl RestClient {
    /// A whole collection (`GET path?fields=…`, every page), each record converted to the
    /// domain type; `what` names it in errors.
    async fn list<W: serde::de::DeserializeOwned, D>(
        &self,
        path: &str,
        fields: Fields,
        query: &[(&str, &str)],
        what: &str,
        f: impl Fn(W) -> Result<D, String>,
    ) -> Result<Vec<D>, OntapError> {
        let records: Vec<W> = self.get_collection(path, fields, query, what).await?;
        self.convert(records, what, f)
    }

    fn convert<W, D>(
        &self,
        records: Vec<W>,
        context: &str,
        f: impl Fn(W) -> Result<D, String>,
    ) -> Result<Vec<D>, OntapError> {
        records
            .into_iter()
            .map(|r| {
                f(r).map_err(|detail| OntapError::Decode {
                    cluster: self.cluster.clone(),
                    context: context.to_string(),
                    detail,
                })
            })
            .collect()
    }

    /// A snapshot collection, every page decoded straight from its body into the domain type
    /// (strings borrowed from the page, the repeated ones shared through one [`Interner`]) and
    /// dropped before the next page is read; `what` names it in errors.
    async fn snapshot_list(
        &self,
        path: &str,
        filter: &[(&str, &str)],
        what: &str,
    ) -> Result<Vec<SnapshotInfo>, OntapError> {
        let mut interner = Interner::default();
        let mut snapshots = Vec::new();
        self.each_page(path, SNAPSHOT_FIELDS, filter, what, |url, bytes| {
            let page: Collection<SnapshotWire<'_>> =
                serde_json::from_slice(bytes).map_err(|e| self.decode_error(url, e.to_string()))?;
            let next = page.next_href().map(str::to_string);
            snapshots.reserve(page.records.len());
            for record in page.records {
                let info =
                    record
                        .into_domain(&mut interner)
                        .map_err(|detail| OntapError::Decode {
                            cluster: self.cluster.clone(),
                            context: what.to_string(),
                            detail,
                        })?;
                snapshots.push(info);
            }
            Ok(next)
        })
        .await?;
        Ok(snapshots)
    }

    async fn find_snapshot(
        &self,
        volume: &VolumeRef,
        name: &str,
        target: &str,
    ) -> Result<SnapshotInfo, OntapError> {
        let found = self
            .snapshot_list(
                &format!("/api/storage/volumes/{}/snapshots", volume.uuid),
                &[("name", name)],
                target,
            )
            .await?;
        found
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| OntapError::Decode {
                cluster: self.cluster.clone(),
                context: target.to_string(),
                detail: "created snapshot not found by name".into(),
            })
    }

    async fn find_lun(&self, svm: &str, path: &str, target: &str) -> Result<LunInfo, OntapError> {
        let records: Vec<LunWire> = self
            .get_collection(
                "/api/storage/luns",
                LUN_FIELDS,
                &[("name", path), ("svm.name", svm)],
                target,
            )
            .await?;
        let found = self.convert(records, target, LunWire::into_domain)?;
        found
            .into_iter()
            .find(|l| l.name == path)
            .ok_or_else(|| OntapError::Decode {
                cluster: self.cluster.clone(),
                context: target.to_string(),
                detail: "created LUN not found by name".into(),
            })
    }

    /// The LUN at `path` and when ONTAP says it was created (`None`: it did not say).
    async fn find_lun_born(
        &self,
        svm: &str,
        path: &str,
        target: &str,
    ) -> Result<(LunInfo, Option<DateTime<FixedOffset>>), OntapError> {
        let records: Vec<LunBornWire> = self
            .get_collection(
                "/api/storage/luns",
                LUN_BORN_FIELDS,
                &[("name", path), ("svm.name", svm)],
                target,
            )
            .await?;
        let found = self.convert(records, target, |r| {
            let born = r
                .create_time
                .as_deref()
                .map(DateTime::parse_from_rfc3339)
                .transpose()
                .map_err(|e| format!("lun {path}: create_time: {e}"))?;
            Ok((r.lun.into_domain()?, born))
        })?;
        found
            .into_iter()
            .find(|(l, _)| l.name == path)
            .ok_or_else(|| OntapError::Decode {
                cluster: self.cluster.clone(),
                context: target.to_string(),
                detail: "created LUN not found by name".into(),
            })
    }

    /// A LUN clone create that failed: when the path is taken ("already exists") after an
    /// earlier attempt of this very call may have been applied, the clone that attempt made is
    /// the one asked for — if the LUN there is a clone in the same volume and SVM, and, for a
    /// FlexClone LUN (`from_snapshot`, the backing snapshot it clones), was created no earlier
    /// than that snapshot: ONTAP's GET does not say which snapshot backs a clone (reference
    /// §3.1), but a LUN older than the snapshot cannot be a clone of it. A taken path is never
    /// adopted when this call's first answer was "already exists": that LUN existed before.
    async fn retried_clone(
        &self,
        failure: Failure,
        volume: &VolumeRef,
        from_snapshot: Option<&str>,
        clone_path: &str,
        target: &str,
    ) -> Result<LunInfo, OntapError> {
        if !failure
            .error
            .code()
            .is_some_and(|code| LUN_EXISTS.contains(&code))
        {
            return Err(failure.error);
        }
        if !failure.earlier_attempt_may_have_applied {
            return Err(with_note(
                failure.error,
                "the path was taken before this create; that LUN is not taken as its clone",
            ));
        }
        let Ok((found, born)) = self.find_lun_born(&volume.svm, clone_path, target).await else {
            return Err(failure.error);
        };
        if !(found.created_as_clone && found.volume_name == volume.name && found.svm == volume.svm)
        {
            return Err(with_note(
                failure.error,
                &format!(
                    "the LUN at that path is not a clone in volume {} of svm {}; it is not this \
                     create's",
                    volume.name, volume.svm
                ),
            ));
        }
        if let Some(snapshot) = from_snapshot {
            if let Err(why) = self.born_after(volume, snapshot, born, target).await {
                return Err(with_note(failure.error, &why));
            }
        }
        tracing::debug!(cluster = %self.cluster, target = %target,
            "clone already exists after a retry whose first answer was lost; taking it as created");
        Ok(found)
    }

    /// Whether a LUN created at `born` can be a clone of `snapshot` on `volume`: created no
    /// earlier than the snapshot. `Err`: why it is not taken as one.
    async fn born_after(
        &self,
        volume: &VolumeRef,
        snapshot: &str,
        born: Option<DateTime<FixedOffset>>,
        target: &str,
    ) -> Result<(), String> {
        let Some(born) = born else {
            return Err(
                "ONTAP did not say when the LUN at that path was created, so it cannot be told \
                 from a LUN that was there before; it is not taken as this create's"
                    .into(),
            );
        };
        let snapshot = self
            .find_snapshot(volume, snapshot, target)
            .await
            .map_err(|e| {
                format!(
                    "backing snapshot {snapshot} could not be read ({e}); the LUN at that path is \
                     not taken as its clone"
                )
            })?;
        if born < snapshot.create_time {
            return Err(format!(
                "the LUN at that path was created at {}, before backing snapshot {} ({}): it is \
                 not a clone of it",
                born.to_rfc3339(),
                snapshot.name,
                snapshot.create_time.to_rfc3339()
            ));
        }
        Ok(())
    }

    /// A delete's outcome: a 404 after an earlier attempt of this call may have been applied
    /// means that attempt deleted the object, so the delete has done its work.
    fn gone_after_retry(
        &self,
        deleted: Result<(), Failure>,
        target: &str,
    ) -> Result<(), OntapError> {
        match deleted {
            Ok(()) => Ok(()),
            Err(Failure {
                error:
                    OntapError::Api {
                        http_status: Some(404),
                        ..
                    },
                earlier_attempt_may_have_applied: true,
            }) => {
                tracing::debug!(cluster = %self.cluster, target = %target,
                    "already gone after a retry whose first answer was lost; taking it as deleted");
                Ok(())
            }
            Err(failure) => Err(failure.error),
        }
    }
}

/// `error` with `note` added to its message, when it is an ONTAP answer (keeping its code).
fn with_note(error: OntapError, note: &str) -> OntapError {
    match error {
        OntapError::Api {
            cluster,
            target,
            code,
            message,
            http_status,
        } => OntapError::Api {
            cluster,
            target,
            code,
            message: format!("{message} ({note})"),
            http_status,
        },
        other => other,
    }
}

/// One query of a re-read: several volumes by an OR list of their uuids, or one volume alone.
#[derive(Debug, PartialEq, Eq)]
enum VolumeQuery<'a> {
    /// `a|b|…`: at most [`VOLUMES_PER_QUERY`] uuids.
    Listed(String),
    /// A uuid that is not plain (letters, digits, `-`): in an OR list, ONTAP would take its
    /// `|`, `*` or `!` for operators, so it is read by its own path.
    Alone(&'a VolumeRef),
}

/// The queries that read `volumes`: the plain uuids in lists of [`VOLUMES_PER_QUERY`], each
/// other volume alone (a volume without a uuid names nothing to read).
fn volume_queries(volumes: &[VolumeRef]) -> Vec<VolumeQuery<'_>> {
    let plain = |v: &VolumeRef| plain_uuid(&v.uuid);
    let named = || volumes.iter().filter(|v| !v.uuid.is_empty());
    let listed: Vec<&VolumeRef> = named().filter(|v| plain(v)).collect();
    let mut out: Vec<VolumeQuery<'_>> = listed
        .chunks(VOLUMES_PER_QUERY)
        .map(|chunk| {
            let uuids: Vec<&str> = chunk.iter().map(|v| v.uuid.as_str()).collect();
            VolumeQuery::Listed(uuids.join("|"))
        })
        .collect();
    out.extend(named().filter(|v| !plain(v)).map(VolumeQuery::Alone));
    out
}

fn volume_target(volume: &VolumeRef) -> String {
    format!("volume {} (svm {})", volume.name, volume.svm)
}

#[async_trait::async_trait]
impl Ontap for RestClient {
    fn cluster_name(&self) -> &str {
        &self.cluster
    }

    async fn cluster(&self) -> Result<ClusterInfo, OntapError> {
        let wire: ClusterWire = self
            .get_object("/api/cluster", CLUSTER_FIELDS, "cluster")
            .await?;
        wire.into_domain().map_err(|detail| OntapError::Decode {
            cluster: self.cluster.clone(),
            context: "GET /api/cluster".into(),
            detail,
        })
    }

    async fn volumes(&self) -> Result<Vec<VolumeInfo>, OntapError> {
        self.list(
            "/api/storage/volumes",
            VOLUME_FIELDS,
            &[],
            "volumes",
            VolumeWire::into_domain,
        )
        .await
    }

    async fn snapshot_policies(&self) -> Result<Vec<SnapshotPolicyInfo>, OntapError> {
        self.list(
            "/api/storage/snapshot-policies",
            POLICY_FIELDS,
            &[],
            "snapshot policies",
            SnapshotPolicyWire::into_domain,
        )
        .await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleInfo>, OntapError> {
        self.list(
            "/api/cluster/schedules",
            SCHEDULE_FIELDS,
            &[],
            "schedules",
            ScheduleWire::into_domain,
        )
        .await
    }

    /// `GET /api/cluster/licensing/licenses/{package}`: 404 means the package is not installed
    /// (unlicensed packages are hidden by default, reference §4.2).
    async fn license(&self, package: &str) -> Result<LicenseState, OntapError> {
        let target = format!("license {package}");
        match self
            .get_object::<LicensePackageWire>(
                &format!("/api/cluster/licensing/licenses/{package}"),
                LICENSE_FIELDS,
                &target,
            )
            .await
        {
            Ok(wire) => Ok(wire.state()),
            Err(OntapError::Api {
                http_status: Some(404),
                ..
            }) => Ok(LicenseState::Unlicensed),
            Err(e) => Err(e),
        }
    }

    async fn snapshots(&self) -> Result<Vec<SnapshotInfo>, OntapError> {
        self.snapshot_list("/api/storage/volumes/*/snapshots", &[], "snapshots")
            .await
    }

    async fn luns(&self) -> Result<Vec<LunInfo>, OntapError> {
        self.list(
            "/api/storage/luns",
            LUN_FIELDS,
            &[],
            "luns",
            LunWire::into_domain,
        )
        .await
    }

    async fn volume_snapshots(
        &self,
        volumes: &[VolumeRef],
    ) -> Result<Vec<SnapshotInfo>, OntapError> {
        let mut out = Vec::new();
        for query in volume_queries(volumes) {
            let found = match &query {
                VolumeQuery::Listed(uuids) => {
                    self.snapshot_list(
                        "/api/storage/volumes/*/snapshots",
                        &[("volume.uuid", uuids)],
                        "snapshots",
                    )
                    .await?
                }
                VolumeQuery::Alone(v) => {
                    self.snapshot_list(
                        &format!("/api/storage/volumes/{}/snapshots", v.uuid),
                        &[],
                        "snapshots",
                    )
                    .await?
                }
            };
            out.extend(found);
        }
        Ok(out)
    }

    async fn volume_luns(&self, volumes: &[VolumeRef]) -> Result<Vec<LunInfo>, OntapError> {
        let mut out = Vec::new();
        for query in volume_queries(volumes) {
            let uuids = match &query {
                VolumeQuery::Listed(uuids) => uuids.as_str(),
                VolumeQuery::Alone(v) => v.uuid.as_str(),
            };
            let found = self
                .list(
                    "/api/storage/luns",
                    LUN_FIELDS,
                    &[("location.volume.uuid", uuids)],
                    "luns",
                    LunWire::into_domain,
                )
                .await?;
            out.extend(found);
        }
        Ok(out)
    }

    async fn volume_settings(&self) -> Result<Vec<VolumeSettings>, OntapError> {
        self.list(
            "/api/storage/volumes",
            VOLUME_SETTINGS_FIELDS,
            &[],
            "volume settings",
            VolumeSettingsWire::into_domain,
        )
        .await
    }

    async fn create_snapshot(
        &self,
        volume: &VolumeRef,
        new: &NewSnapshot<'_>,
    ) -> Result<SnapshotInfo, OntapError> {
        let (name, comment) = (new.name, new.comment);
        let target = format!("{} snapshot {name}", volume_target(volume));
        let mut body = json!({ "name": name, "comment": comment });
        if let Some(label) = new.snapmirror_label {
            body["snapmirror_label"] = json!(label);
        }
        let created = self
            .mutate_for_records(
                Method::POST,
                &format!("/api/storage/volumes/{}/snapshots", volume.uuid),
                &[("return_records", "true")],
                Some(body),
                &target,
            )
            .await;
        match created {
            // The answer's record, when it is complete, saves reading the snapshot back (one
            // GET per create; ONTAP may return only some fields, then the GET is made).
            Ok(records) => match created_snapshot(records, volume, new) {
                Some(info) => Ok(info),
                None => self.find_snapshot(volume, name, &target).await,
            },
            // A POST retried after its answer was lost may find its own first attempt's
            // snapshot, and a pass after a crash its predecessor's. Same name, same comment and
            // same label: that is the snapshot asked for, so the create is idempotent. Anything
            // else keeps the error: a same-named snapshot that is not this one is never adopted.
            Err(failure) if failure.error.code() == Some(SNAPSHOT_EXISTS) => {
                let found = self.find_snapshot(volume, name, &target).await;
                match found {
                    Ok(found) if is_asked(&found, new) => {
                        tracing::debug!(cluster = %self.cluster, target = %target,
                            "snapshot already exists with this comment; taking it as created");
                        Ok(found)
                    }
                    Ok(found) => Err(with_note(
                        failure.error,
                        &format!(
                            "the existing snapshot's comment is {:?} and label {:?}, not {comment:?} \
                             and {:?}: it is not this create's",
                            found.comment.as_deref().unwrap_or(""),
                            found.snapmirror_label.as_deref().unwrap_or(""),
                            new.snapmirror_label.unwrap_or("")
                        ),
                    )),
                    Err(_) => Err(failure.error),
                }
            }
            Err(failure) => Err(failure.error),
        }
    }

    async fn delete_snapshot(
        &self,
        volume: &VolumeRef,
        snapshot_uuid: &str,
        snapshot_name: &str,
    ) -> Result<(), OntapError> {
        let target = format!("{} snapshot {snapshot_name}", volume_target(volume));
        let deleted = self
            .mutate(
                Method::DELETE,
                &format!(
                    "/api/storage/volumes/{}/snapshots/{snapshot_uuid}",
                    volume.uuid
                ),
                &[],
                None,
                &target,
            )
            .await;
        self.gone_after_retry(deleted, &target)
    }

    async fn clone_lun_flexclone(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        let target = format!("lun {clone_path}");
        let source = lun_in_snapshot(&volume.name, snapshot_name, source_lun);
        let created = self
            .mutate(
                Method::POST,
                "/api/storage/luns",
                &[],
                Some(json!({
                    "svm": { "name": volume.svm },
                    "name": clone_path,
                    "clone": { "source": { "name": source } },
                })),
                &target,
            )
            .await;
        match created {
            Ok(()) => self.find_lun(&volume.svm, clone_path, &target).await,
            Err(failure) => {
                self.retried_clone(failure, volume, Some(snapshot_name), clone_path, &target)
                    .await
            }
        }
    }

    async fn clone_lun_snaprestore(
        &self,
        volume: &VolumeRef,
        snapshot_name: &str,
        source_lun: &str,
        clone_path: &str,
    ) -> Result<LunInfo, OntapError> {
        let target = format!("lun {clone_path}");
        let path = path_in_volume(&volume.name, source_lun);
        let restore_path = path_in_volume(&volume.name, clone_path);
        let created = self
            .mutate(
                Method::PATCH,
                &format!("/api/storage/volumes/{}", volume.uuid),
                &[
                    ("restore_to.snapshot.name", snapshot_name),
                    ("restore_to.path", &path),
                    ("restore_to.restore_path", &restore_path),
                ],
                Some(json!({})),
                &target,
            )
            .await;
        match created {
            Ok(()) => self.find_lun(&volume.svm, clone_path, &target).await,
            // A restored file may keep the times of the LUN it was restored from: only the path,
            // volume and SVM tell a SnapRestore clone.
            Err(failure) => {
                self.retried_clone(failure, volume, None, clone_path, &target)
                    .await
            }
        }
    }

    async fn delete_lun(
        &self,
        lun_uuid: &str,
        lun_path: &str,
        allow_delete_while_mapped: bool,
    ) -> Result<(), OntapError> {
        let target = format!("lun {lun_path}");
        let deleted = self
            .mutate(
                Method::DELETE,
                &format!("/api/storage/luns/{lun_uuid}"),
                &[(
                    "allow_delete_while_mapped",
                    if allow_delete_while_mapped {
                        "true"
                    } else {
                        "false"
                    },
                )],
                None,
                &target,
            )
            .await;
        self.gone_after_retry(deleted, &target)
    }
}

/// The snapshot a create's answer carried (`return_records=true`), when its record is complete
/// and is the snapshot asked for: the name and comment asked for, on the volume asked for.
/// `None` sends the caller to read the snapshot back.
fn created_snapshot(
    records: Vec<Value>,
    volume: &VolumeRef,
    new: &NewSnapshot<'_>,
) -> Option<SnapshotInfo> {
    let record = records.into_iter().next()?;
    let info = SnapshotWire::deserialize(&record)
        .ok()?
        .into_domain(&mut Interner::default())
        .ok()?;
    (info.volume_uuid == volume.uuid && is_asked(&info, new)).then_some(info)
}

/// Whether `found` is the snapshot `new` asks for: same name, comment and SnapMirror label (a
/// record without the label, such as a partial answer, is not taken for a labelled create).
fn is_asked(found: &SnapshotInfo, new: &NewSnapshot<'_>) -> bool {
    found.name == new.name
        && found.comment.as_deref().unwrap_or("") == new.comment
        && found.snapmirror_label.as_deref() == new.snapmirror_label
}

/// A LUN record with its `create_time` ([`LUN_BORN_FIELDS`]).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LunBornWire {
    #[serde(flatten)]
    lun: LunWire,
    create_time: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(uuid: &str) -> VolumeRef {
        VolumeRef {
            uuid: uuid.into(),
            name: format!("v_{uuid}"),
            svm: "svm1".into(),
        }
    }

    #[test]
    fn plain_uuids_go_forty_to_a_query_and_any_other_alone() {
        let mut volumes: Vec<VolumeRef> = (0..81).map(|i| volume(&format!("u-{i:02}"))).collect();
        volumes.insert(5, volume("a|b"));
        volumes.insert(50, volume("*"));
        volumes.push(volume(""));
        let queries = volume_queries(&volumes);
        let listed: Vec<Vec<String>> = queries
            .iter()
            .filter_map(|q| match q {
                VolumeQuery::Listed(u) => Some(u.split('|').map(str::to_string).collect()),
                VolumeQuery::Alone(_) => None,
            })
            .collect();
        assert_eq!(listed.iter().map(Vec::len).collect::<Vec<_>>(), [40, 40, 1]);
        let expected: Vec<String> = (0..81).map(|i| format!("u-{i:02}")).collect();
        assert_eq!(listed.concat(), expected, "every plain uuid once, in order");
        let alone: Vec<&str> = queries
            .iter()
            .filter_map(|q| match q {
                VolumeQuery::Alone(v) => Some(v.uuid.as_str()),
                VolumeQuery::Listed(_) => None,
            })
            .collect();
        assert_eq!(alone, ["a|b", "*"], "and the empty uuid in none");
        assert!(volume_queries(&[]).is_empty());
    }
}
