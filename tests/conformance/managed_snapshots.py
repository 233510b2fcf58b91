#!/usr/bin/env python3
"""The snapshots snapwarden takes for a managed schedule, as NetApp's official Python client sees them.

Reads a running simulator through `netapp_ontap` (PyPI `netapp-ontap==9.19.1.0`) after `snapwarden
run` took a volume's scheduled snapshots itself (`managed_snapshots`), and checks each managed copy
against what the caller expects: the series (names `<prefix>.<YYYY-MM-DD_HHMM>` in the cluster's
local time) is exactly the expected names, as many as the copy's count; every snapshot snapwarden
took carries the copy's `snapmirror_label` and the comment `created-by=snapwarden schedule=<prefix>`
and is named after the local minute of its `create_time`; the label filters the series out of the
volume's snapshots; the snapshots ONTAP took before the hand-over that rotation kept are unchanged;
and the look-alike names beside the series are untouched. Exits non-zero at the first mismatch.

Usage: managed_snapshots.py HOST PORT USER PASSWORD SCHEME EXPECTATIONS_JSON

EXPECTATIONS_JSON: {"volume": "vol1", "utc_offset_minutes": 330, "untouched": ["name", ...],
  "copies": [{"prefix": "minutely", "label": "minutely", "count": 3,
              "series": ["minutely.2026-…", ...],      # exactly these, in any order
              "taken": ["minutely.2026-…", ...],       # the ones snapwarden took
              "handed_over_comment": "…"}]}             # the comment of ONTAP's own
"""

import datetime
import json
import re
import sys
import warnings

try:
    from netapp_ontap import HostConnection, config
    from netapp_ontap.resources import Snapshot, Volume
except ImportError as err:  # pragma: no cover - reported by the Rust test
    print(f"netapp_ontap is not importable ({err}); run scripts/test, which installs it", file=sys.stderr)
    sys.exit(3)

warnings.filterwarnings("ignore")  # InsecureRequestWarning for the self-signed certificate


class Mismatch(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Mismatch(what)
    print(f"ok: {what}")


def stamp_of(prefix, name):
    """The local time a series name carries, or None when the name is not of the exact pattern."""
    match = re.fullmatch(re.escape(prefix) + r"\.(\d{4}-\d{2}-\d{2}_\d{4})", name)
    if not match:
        return None
    return datetime.datetime.strptime(match.group(1), "%Y-%m-%d_%H%M")


def main():
    if len(sys.argv) != 7:
        raise SystemExit("usage: managed_snapshots.py HOST PORT USER PASSWORD SCHEME EXPECTATIONS_JSON")
    host, port, user, password, scheme, expected = sys.argv[1:]
    expected = json.loads(expected)
    config.CONNECTION = HostConnection(
        host, username=user, password=password, verify=False, port=int(port), scheme=scheme,
        poll_interval=1, poll_timeout=30,
    )
    offset = datetime.timedelta(minutes=expected["utc_offset_minutes"])

    vol = next(iter(Volume.get_collection(name=expected["volume"], fields="name,snapshot_policy")))
    check(vol.snapshot_policy.name == "none",
          f"{vol.name}'s ONTAP snapshot policy takes nothing ({vol.snapshot_policy.name}): snapwarden takes them")
    snaps = list(Snapshot.get_collection(vol.uuid, fields="name,comment,snapmirror_label,create_time"))
    by_name = {s.name: s for s in snaps}
    check(len(by_name) == len(snaps), "snapshot names are unique on the volume")

    for copy in expected["copies"]:
        prefix, label, count = copy["prefix"], copy["label"], copy["count"]
        series = sorted(n for n in by_name if stamp_of(prefix, n) is not None)
        check(series == sorted(copy["series"]),
              f"the {prefix} series is exactly the expected snapshots ({series} == {sorted(copy['series'])})")
        check(len(series) == count, f"the {prefix} series holds its count {count}")
        marker = f"created-by=snapwarden schedule={prefix}"
        for name in series:
            snap = by_name[name]
            local = snap.create_time.astimezone(datetime.timezone(offset)).replace(tzinfo=None)
            stamp = stamp_of(prefix, name)
            if name in copy["taken"]:
                check(snap.comment == marker, f"{name} carries snapwarden's marker ({snap.comment!r})")
                check(getattr(snap, "snapmirror_label", None) == label,
                      f"{name} carries snapmirror_label {label!r}")
                check(stamp <= local < stamp + datetime.timedelta(minutes=2),
                      f"{name} is named after the local minute it was taken in ({snap.create_time.isoformat()})")
            else:
                check(snap.comment == copy["handed_over_comment"],
                      f"{name}, taken by ONTAP before the hand-over, is unchanged ({snap.comment!r})")
        labelled = sorted(s.name for s in Snapshot.get_collection(vol.uuid, snapmirror_label=label))
        check(labelled == series, f"snapmirror_label={label} selects the {prefix} series ({labelled})")
        check(any(n in series for n in copy["taken"]), f"snapwarden's own {prefix} snapshots are in the series")

    for name in expected["untouched"]:
        check(name in by_name, f"look-alike {name} is untouched")
    print("managed snapshots: OK")


if __name__ == "__main__":
    try:
        main()
    except Mismatch as err:
        print(f"MISMATCH: {err}", file=sys.stderr)
        sys.exit(1)
    except Exception as err:  # any client-side surprise is a mismatch too
        print(f"MISMATCH (unexpected {type(err).__name__}): {err}", file=sys.stderr)
        sys.exit(2)
