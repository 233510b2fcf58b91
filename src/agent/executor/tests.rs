//! The executor's tests: settling intents from a listing, and a replica that does not lead
//! touching nothing.

#[cfg(test)]
mod settling {
    use crate::agent::clock::SystemClock;
    use crate::agent::cycle::CloneLun;
    use crate::agent::executor::release::settle;
    use crate::agent::executor::*;
    use crate::ontap::LunInfo;

    fn cycle() -> Cycle {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        Cycle {
            backing_snapshot: "snapwarden.w.20270101T010000Z".into(),
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: "/vol/v/snapwarden.w.20270101T010000Z.lun0".into(),
            }],
            state: CycleState::Releasing,
            created_at: Some(at),
            ..Cycle::sample("c1", at)
        }
    }

    fn listing(luns: Vec<LunInfo>) -> Inventory {
        Inventory::sample(Vec::new(), luns, Utc::now())
    }

    fn lun_at_clone_path(created_as_clone: bool) -> LunInfo {
        LunInfo {
            uuid: "lun-uuid".into(),
            name: "/vol/v/snapwarden.w.20270101T010000Z.lun0".into(),
            svm: "svm1".into(),
            volume_name: "v".into(),
            mapped: false,
            created_as_clone,
            size: None,
        }
    }

    /// A crash during a clone's create leaves its intent; the next start looks the path up.
    /// Only a clone there can be the cycle's: a plain LUN at the path is never adopted (and so
    /// never deleted), and the intent is settled as never created.
    #[test]
    fn an_unanswered_clone_create_settles_only_on_a_clone_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = Ctx {
            clock: Arc::new(SystemClock),
            journal: Arc::new(Journal::open(dir.path()).unwrap()),
            prefix: "snapwarden".into(),
            fence: None,
        };
        let c = cycle();
        assert!(ctx.journal.insert_cycle(&c, ctx.now()).unwrap());
        let intent = ctx
            .journal
            .objects(&c.id)
            .unwrap()
            .into_iter()
            .find(|o| o.kind == ObjectKind::Lun)
            .unwrap();
        assert_eq!(intent.state, ObjectState::Intent);

        let plain = settle(
            &ctx,
            &c,
            &intent,
            Some(&listing(vec![lun_at_clone_path(false)])),
        );
        assert_eq!(
            plain.map(|o| (o.state, o.uuid)),
            Some((ObjectState::Absent, None))
        );

        let clone = settle(
            &ctx,
            &c,
            &intent,
            Some(&listing(vec![lun_at_clone_path(true)])),
        );
        assert_eq!(
            clone.map(|o| (o.state, o.uuid)),
            Some((ObjectState::Created, Some("lun-uuid".to_string())))
        );
        assert_eq!(
            settle(&ctx, &c, &intent, None),
            None,
            "no listing, no answer"
        );
    }
}

#[cfg(test)]
mod fence_tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::agent::clock::SystemClock;
    use crate::agent::cycle::CloneLun;
    use crate::agent::executor::*;
    use crate::ha::memory::MemoryElection;
    use crate::ontap::{Resolve, Via};

    /// Counts every ONTAP call; none should reach it.
    struct Counting(Arc<AtomicUsize>);

    impl Resolve for Counting {
        fn resolve(&self) -> Result<Arc<dyn Ontap>, OntapError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Err(OntapError::Transport {
                cluster: "c".into(),
                context: "test".into(),
                source: "unreachable in this test".into(),
            })
        }
    }

    fn cycle(state: CycleState) -> Cycle {
        let at: DateTime<Utc> = "2027-01-01T01:00:00Z".parse().unwrap();
        Cycle {
            backing_snapshot: "snapwarden.w.20270101T010000Z".into(),
            clone_kind: CloneKind::FlexClone,
            clones: vec![CloneLun {
                source: "/vol/v/lun0".into(),
                path: "/vol/v/snapwarden.w.20270101T010000Z.lun0".into(),
            }],
            state,
            ..Cycle::sample("c1", at)
        }
    }

    /// A replica that does not lead (never elected, or deposed after it led) creates and deletes
    /// nothing: the executor asks the elector right before each call.
    #[tokio::test]
    async fn a_replica_that_does_not_lead_touches_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let election = MemoryElection::new();
        let a = election.join("a");
        let ctx = Ctx {
            clock: Arc::new(SystemClock),
            journal: Arc::new(Journal::open(dir.path()).unwrap()),
            prefix: "snapwarden".into(),
            fence: Some(a),
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let conn = ClusterConn {
            name: "c".into(),
            ontap: Arc::new(Via::new("c", Counting(calls.clone()))),
            permits: Arc::new(Semaphore::new(1)),
            changed: Default::default(),
        };
        let vref = VolumeRef {
            uuid: "vu".into(),
            name: "v".into(),
            svm: "svm1".into(),
        };
        let made = create(&ctx, &conn, &vref, cycle(CycleState::Creating))
            .await
            .expect("journaled");
        assert_eq!(made.state, CycleState::Failed);
        assert!(made.detail.contains("is not the leader"), "{}", made.detail);
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no ONTAP call");

        // It led and made the snapshot and the clone; then it was deposed: no delete goes out.
        let c = Cycle {
            id: "c2".into(),
            window_start: "2027-01-02T01:00:00Z".parse().unwrap(),
            ..cycle(CycleState::Backup)
        };
        election.elect("a");
        assert!(ctx.journal.insert_cycle(&c, ctx.now()).unwrap());
        ctx.set_object(
            &c,
            ObjectKind::Snapshot,
            &c.backing_snapshot,
            Some("su"),
            ObjectState::Created,
        );
        ctx.set_object(
            &c,
            ObjectKind::Lun,
            &c.clones[0].path,
            Some("lu"),
            ObjectState::Created,
        );
        election.depose();
        let r = release(&ctx, &conn, &vref, None, c).await;
        assert!(r.again, "the release is left for a leader");
        assert_eq!(calls.load(Ordering::SeqCst), 0, "no ONTAP call");
        let objects = ctx.journal.objects("c2").unwrap();
        assert!(
            objects.iter().all(|o| o.state == ObjectState::Created),
            "{objects:?}"
        );
    }
}
