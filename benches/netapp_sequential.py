#!/usr/bin/env python3
"""The baseline of `cargo bench --bench agent_cycle`: one backup cycle per volume, sequentially,
with NetApp's official Python client (PyPI `netapp-ontap`), as an admin would script it.

Per volume, the same lifecycle the agent runs with `clone = "auto"` on a cluster licensed for
SnapRestore only: create the backing snapshot (with a comment), clone the LUN from it with a
SnapRestore single-file restore (`PATCH /api/storage/volumes/{uuid}` with `restore_to`), delete
the clone, delete the snapshot. Every mutation waits for its job (`poll=True`), as the agent does.
The volumes' uuids are read once, with one collection GET, before the loop.

Usage: netapp_sequential.py HOST PORT USER PASSWORD VOLUME_PREFIX COUNT
Prints one JSON line: {"volumes", "wall_seconds", "cpu_seconds", "peak_rss_kib"}. Certificates are not verified
(the simulator's is self-signed). Exits non-zero at the first failure.
"""

import json
import resource
import sys
import time
import warnings

from netapp_ontap import HostConnection, config
from netapp_ontap.resources import Lun, Snapshot, Volume

warnings.filterwarnings("ignore")  # InsecureRequestWarning for the self-signed certificate


def main():
    host, port, user, password, prefix, count = sys.argv[1:7]
    count = int(count)
    config.CONNECTION = HostConnection(
        host, username=user, password=password, verify=False, port=int(port),
        poll_interval=1, poll_timeout=60,
    )
    started = time.monotonic()
    volumes = {
        v.name: v
        for v in Volume.get_collection(fields="name,svm")
        if v.name.startswith(prefix)
    }
    names = sorted(volumes)[:count]
    if len(names) != count:
        raise SystemExit(f"found {len(names)} volumes named {prefix}*, expected {count}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for name in names:
        vol = volumes[name]
        snap_name = f"script.nightly.{stamp}"
        clone_path = f"/vol/{name}/{snap_name}.lun0"
        # 1. the backing snapshot
        snapshot = Snapshot(vol.uuid, name=snap_name, comment="created by the sequential script")
        snapshot.post(poll=True)
        # 2. a SnapRestore clone of the LUN from it
        Volume(uuid=vol.uuid).patch(poll=True, **{
            "restore_to.snapshot.name": snap_name,
            "restore_to.path": "/lun0",
            "restore_to.restore_path": f"/{snap_name}.lun0",
        })
        # (the backup tool would read the clone here)
        # 3. delete the clone
        clone = Lun.find(name=clone_path, **{"svm.name": vol.svm.name})
        if clone is None:
            raise SystemExit(f"clone {clone_path} not found after the restore")
        clone.delete(poll=True, allow_delete_while_mapped=True)
        # 4. delete the snapshot
        snapshot.delete(poll=True)
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "volumes": count,
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_kib": usage.ru_maxrss,  # KiB on Linux
    }))


if __name__ == "__main__":
    main()
