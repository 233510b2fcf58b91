#!/usr/bin/env python3
"""Conformance of the snapwarden ONTAP simulator with NetApp's official Python client.

Drives a running simulator through `netapp_ontap` (PyPI `netapp-ontap==9.19.1.0`): list, create
with job polling, get with fields, delete, the busy-snapshot failure (job code 1638555) as the
client surfaces it, a snapshot's `snapmirror_label`, and the create errors 525059 (name taken) and
1638477 (reserved prefix, through the simulator's knob). Exits non-zero at the first
incompatibility.

The world must hold cluster SVM `svm1`, volume `vol1` with LUN `/vol/vol1/lun1`, the built-in
`default` policy on `vol1`, the `snaprestore` license and not `flexclone` (as
`tests/sim_conformance.rs` sets up), and a manual clock.

Usage: ontap_conformance.py HOST PORT USER PASSWORD [SCHEME]
       (or env SIM_HOST, SIM_PORT, SIM_USER, SIM_PASSWORD, SIM_SCHEME; SCHEME http or https;
        certificates are not verified: the simulator's is self-signed)
"""

import os
import sys
import warnings

try:
    from netapp_ontap import HostConnection, NetAppRestError, config
    from netapp_ontap.resources import (
        Job,
        LicensePackage,
        Lun,
        Schedule,
        Snapshot,
        SnapshotPolicy,
        Volume,
    )
except ImportError as err:  # pragma: no cover - reported by the Rust test
    print(f"netapp_ontap is not importable ({err}); run scripts/test, which installs it", file=sys.stderr)
    sys.exit(3)

import requests

warnings.filterwarnings("ignore")  # InsecureRequestWarning for the self-signed certificate


class Incompatible(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Incompatible(what)
    print(f"ok: {what}")


def arg(i, env, default=None):
    if len(sys.argv) > i:
        return sys.argv[i]
    value = os.environ.get(env, default)
    if value is None:
        raise SystemExit(f"missing argument {i} (or env {env}); see the module docstring")
    return value


def main():
    host = arg(1, "SIM_HOST")
    port = int(arg(2, "SIM_PORT"))
    user = arg(3, "SIM_USER")
    password = arg(4, "SIM_PASSWORD")
    scheme = arg(5, "SIM_SCHEME", "https")
    conn = HostConnection(host, username=user, password=password, verify=False, port=port, scheme=scheme, poll_interval=1, poll_timeout=30)
    config.CONNECTION = conn
    base = f"{scheme}://{host}:{port}"

    def advance(seconds):
        r = requests.post(f"{base}/simulator/v1/clock/advance", json={"seconds": seconds, "events": True}, auth=(user, password), verify=False, timeout=30)
        r.raise_for_status()
        return r.json()

    # --- list and get with fields ---
    volumes = list(Volume.get_collection(fields="name,svm,snapshot_policy"))
    vol = next((v for v in volumes if v.name == "vol1"), None)
    check(vol is not None, "Volume.get_collection lists vol1")
    check(vol.svm.name == "svm1" and vol.snapshot_policy.name == "default", "Volume fields svm and snapshot_policy")
    vol = Volume(uuid=vol.uuid)
    vol.get(fields="size,snapshot_policy")
    check(vol.size > 0, "Volume.get(fields=...)")

    schedules = {s.name: s for s in Schedule.get_collection(fields="type,cron")}
    check("hourly" in schedules and schedules["hourly"].type == "cron", "Schedule.get_collection has the cron hourly schedule")
    check(list(schedules["hourly"].cron.minutes) == [5], "hourly fires at minute 5")

    policies = {p.name: p for p in SnapshotPolicy.get_collection(fields="copies,enabled")}
    check("default" in policies, "SnapshotPolicy.get_collection has default")
    copies = {c.schedule.name: c.count for c in policies["default"].copies}
    check(copies == {"hourly": 6, "daily": 2, "weekly": 2}, "default policy copies and counts")

    licensed = {p.name for p in LicensePackage.get_collection()}
    check("snaprestore" in licensed and "flexclone" not in licensed, "LicensePackage lists licensed packages only")
    unlicensed = {p.name for p in LicensePackage.get_collection(state="unlicensed")}
    check("flexclone" in unlicensed, "state=unlicensed shows flexclone")
    flexclone = LicensePackage(name="flexclone")
    flexclone.get(fields="state")
    check(flexclone.state == "unlicensed", "LicensePackage('flexclone').get(fields='state')")

    luns = {l.name: l for l in Lun.get_collection(fields="status.mapped,os_type")}
    check("/vol/vol1/lun1" in luns, "Lun.get_collection lists /vol/vol1/lun1")

    # --- create with poll, get ---
    backing = Snapshot(vol.uuid, name="backing", comment="conformance")
    backing.post(poll=True)
    check(bool(getattr(backing, "uuid", None)), "Snapshot.post(poll=True) learns the uuid from Location")
    backing = Snapshot(vol.uuid, uuid=backing.uuid)
    backing.get(fields="name,create_time,comment,owners")
    check(backing.name == "backing" and backing.comment == "conformance", "Snapshot.get(fields=...)")

    # --- SnapRestore clone of the LUN; the backing snapshot shows an owner ---
    vol.patch(poll=True, **{"restore_to.snapshot.name": "backing", "restore_to.path": "/lun1", "restore_to.restore_path": "/lun1_clone"})
    backing.get(fields="owners")
    check(list(getattr(backing, "owners", [])) == ["lun_clone"], "the backing snapshot is owned by the clone")
    taken = [e for e in advance(600)["events"] if e["kind"] == "taken" and e["volume"] == "vol1"]
    check(len(taken) == 1 and taken[0]["snapshot"].startswith("hourly."), "a scheduled snapshot fired in virtual time")

    # --- delete of a locked snapshot: job failure 1638555 ---
    try:
        backing.delete(poll=True)
        raise Incompatible("deleting a locked snapshot succeeded")
    except NetAppRestError as err:
        check("has not expired or is locked" in str(err), f"delete(poll=True) raises NetAppRestError: {err}")
    response = backing.delete(poll=False)
    job_uuid = response.http_response.json()["job"]["uuid"]
    job = Job(uuid=job_uuid)
    job.get()
    check(job.state == "failure" and job.code == 1638555, f"Job.get() shows failure code 1638555 ({job.state}, {job.code})")
    try:
        backing.delete(return_timeout=15)
        raise Incompatible("deleting a locked snapshot with return_timeout succeeded")
    except NetAppRestError as err:
        body = err.response_body or {}
        check(body.get("error", {}).get("code") == "1638555", f"return_timeout surfaces error code \"1638555\" ({body})")

    # --- release: clone, then the pinning scheduled snapshot, then the backing snapshot ---
    clone = next(iter(Lun.get_collection(name="/vol/vol1/lun1_clone")))
    clone.delete(poll=True)
    try:
        backing.delete(poll=True)
        raise Incompatible("the backing snapshot was deletable while a scheduled snapshot pins it")
    except NetAppRestError:
        check(True, "still locked after the clone is deleted")
    for snap in Snapshot.get_collection(vol.uuid, name="hourly.*"):
        snap.delete(poll=True)
    backing.delete(poll=True)
    remaining = [s.name for s in Snapshot.get_collection(vol.uuid)]
    check(remaining == [], f"all snapshots released ({remaining})")

    # --- pagination through _links.next ---
    for i in range(5):
        Snapshot(vol.uuid, name=f"page{i}").post(poll=True)
    names = [s.name for s in Snapshot.get_collection(vol.uuid, max_records=2, fields="create_time")]
    check(sorted(names) == [f"page{i}" for i in range(5)], "get_collection follows _links.next with max_records=2")
    jobs = list(Job.get_collection(fields="state"))
    check(len(jobs) > 0 and all(j.state in ("success", "failure") for j in jobs), "Job.get_collection")

    def admin(path, body):
        r = requests.post(f"{base}/simulator/v1/{path}", json=body, auth=(user, password), verify=False, timeout=30)
        r.raise_for_status()
        return r.json()

    def error_code(err):
        return (err.response_body or {}).get("error", {}).get("code")

    # --- snapmirror_label: created, read back, listed and filtered on ---
    labelled = Snapshot(vol.uuid, name="hourly.2026-03-10_1105", comment="managed by snapwarden", snapmirror_label="hourly")
    labelled.post(poll=True)
    labelled = Snapshot(vol.uuid, uuid=labelled.uuid)
    labelled.get(fields="name,comment,snapmirror_label")
    check(labelled.snapmirror_label == "hourly", "Snapshot.post with snapmirror_label, read back with get(fields=snapmirror_label)")
    found = [s.name for s in Snapshot.get_collection(vol.uuid, snapmirror_label="hourly", fields="snapmirror_label")]
    check(found == ["hourly.2026-03-10_1105"], f"get_collection(snapmirror_label=...) filters on the label ({found})")

    # --- a name the volume holds already: error 525059 ---
    try:
        Snapshot(vol.uuid, name="hourly.2026-03-10_1105", comment="again").post(poll=True)
        raise Incompatible("creating a snapshot with a taken name succeeded")
    except NetAppRestError as err:
        check(error_code(err) == "525059", f"a taken name raises NetAppRestError with code \"525059\" ({err})")

    # --- a reserved prefix (simulator knob): error 1638477; other names still work ---
    admin("knobs", {"reserved_snapshot_prefixes": ["weekly"]})
    try:
        Snapshot(vol.uuid, name="weekly.2026-03-10_1105").post(poll=True)
        raise Incompatible("creating a snapshot with a reserved prefix succeeded")
    except NetAppRestError as err:
        check(error_code(err) == "1638477", f"a reserved prefix raises NetAppRestError with code \"1638477\" ({err})")
    Snapshot(vol.uuid, name="weekly-ish.1").post(poll=True)
    check(True, "a name outside the reserved prefixes is created")
    admin("knobs", {"reserved_snapshot_prefixes": []})

    # --- busy with a SnapMirror owner (admin API): owners lists it, the delete fails ---
    held = admin("volumes/vol1/snapshots/weekly-ish.1/owners", {"owners": ["snapmirror"]})
    check(held["owners"] == ["snapmirror"], "the admin API holds a snapshot for SnapMirror")
    busy = next(iter(Snapshot.get_collection(vol.uuid, name="weekly-ish.1", fields="owners")))
    check(list(busy.owners) == ["snapmirror"], "Snapshot.get_collection shows the snapmirror owner")
    try:
        busy.delete(poll=True)
        raise Incompatible("deleting a snapshot busy with SnapMirror succeeded")
    except NetAppRestError as err:
        check("has not expired or is locked" in str(err), f"deleting it raises NetAppRestError: {err}")
    admin("volumes/vol1/snapshots/weekly-ish.1/owners", {"owners": []})
    busy.delete(poll=True)
    check(True, "released, it deletes")

    # --- what doctor reads: autodelete, locking, naming, reserve; owners, size, SnapLock expiry ---
    hz = Volume.find(name="vol_hazard", fields=(
        "size,space.snapshot.autodelete_enabled,space.snapshot.autodelete.commitment,"
        "space.snapshot.autodelete.trigger,space.snapshot.reserve_percent,space.snapshot.reserve_size,"
        "space.snapshot.used,snapshot_locking_enabled,scheduled_snapshot_naming_scheme"))
    check(hz is not None, "Volume.find(name=vol_hazard)")
    snap = hz.space.snapshot
    check(snap.autodelete_enabled is True, "space.snapshot.autodelete_enabled")
    check(snap.autodelete.commitment == "destroy" and snap.autodelete.trigger == "snap_reserve",
          "space.snapshot.autodelete.commitment and trigger")
    check(snap.reserve_percent == 10 and snap.reserve_size == hz.size // 10,
          f"space.snapshot.reserve_percent and reserve_size ({snap.reserve_percent}, {snap.reserve_size})")
    check(snap.used >= 1048576, f"space.snapshot.used counts the held snapshot ({snap.used})")
    check(hz.snapshot_locking_enabled is True, "snapshot_locking_enabled")
    check(hz.scheduled_snapshot_naming_scheme == "ordinal", "scheduled_snapshot_naming_scheme")
    held = next(iter(Snapshot.get_collection(hz.uuid, name="held", fields="owners,size,snaplock_expiry_time")))
    check(list(held.owners) == ["snapmirror", "dump"], f"owners snapmirror and dump ({held.owners})")
    check(held.size >= 1048576, "the planted size")
    check(held.snaplock_expiry_time.year == 2030, f"snaplock_expiry_time ({held.snaplock_expiry_time})")
    try:
        held.delete(poll=True)
        raise Incompatible("deleting a held, tamper-proof snapshot succeeded")
    except NetAppRestError as err:
        check("has not expired or is locked" in str(err), f"deleting it raises NetAppRestError: {err}")
    print("conformance: OK")


if __name__ == "__main__":
    try:
        main()
    except Incompatible as err:
        print(f"INCOMPATIBLE: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # any client-side surprise is an incompatibility too
        print(f"INCOMPATIBLE (unexpected {type(err).__name__}): {err}", file=sys.stderr)
        sys.exit(2)
