"""Which filesystems deliver no inotify events for changes made elsewhere: network
shares, VM shares and the bind mounts of Docker Desktop, where only writes made by
this kernel produce events. ``auto`` polls there from the start."""

from __future__ import annotations

import os
from typing import NamedTuple

# mountinfo type names; any "fuse.*" (fuse.grpcfuse, fuse.bindfs, fuse.sshfs) too
UNRELIABLE_TYPES: dict[str, str] = {
    "nfs": "NFS",
    "nfs4": "NFS",
    "cifs": "SMB",
    "smb3": "SMB",
    "smbfs": "SMB",
    "9p": "9p (WSL2 Windows drives, Docker Desktop on Windows, QEMU shares)",
    "virtiofs": "virtiofs (Docker Desktop, VM shares)",
    "fakeowner": "fakeowner (Docker Desktop bind mount)",
    "vboxsf": "VirtualBox shared folder",
    "prl_fs": "Parallels shared folder",
    "fuse": "FUSE (Docker Desktop gRPC-FUSE, sshfs, bindfs, ...)",
    "fuseblk": "FUSE",
    "afs": "AFS",
    "coda": "Coda",
    "ceph": "Ceph",
    "lustre": "Lustre",
    "gfs2": "GFS2",
    "ocfs2": "OCFS2",
}

MOUNTINFO = "/proc/self/mountinfo"


class Mount(NamedTuple):
    point: str
    fstype: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def read_mounts(text: str) -> list[Mount]:
    """The mounts of a ``/proc/<pid>/mountinfo`` text (malformed lines are skipped)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        after = fields.index("-", 6)
        if len(fields) > after + 1 and len(fields) > 4:
            mounts.append(Mount(_unescape(fields[4]), fields[after + 1]))
    return mounts


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount ``path`` is on: the last mounted of the longest matching points."""
    path = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.point.rstrip("/") or "/"
        inside = point == "/" or path == point or path.startswith(point + "/")
        if inside and (best is None or len(point) >= len(best.point.rstrip("/") or "/")):
            best = mount
    return best


def describe_unreliable(mount: Mount) -> str | None:
    """A sentence naming the mount when its filesystem is known to miss events."""
    kind = UNRELIABLE_TYPES.get(mount.fstype)
    if kind is None and mount.fstype.startswith("fuse."):
        kind = "FUSE"
    if kind is None:
        return None
    return f"{mount.point} is a {mount.fstype} mount ({kind})"


def unreliable_filesystem(path: str, mountinfo: str = MOUNTINFO) -> str | None:
    """Why inotify is unlikely to see changes made by others under ``path``, else
    None (ext4, xfs, btrfs, tmpfs, overlayfs and Linux bind mounts deliver events)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            mounts = read_mounts(f.read())
    except OSError:
        return None
    mount = mount_of(path, mounts)
    return describe_unreliable(mount) if mount else None


def mount_description(path: str, mountinfo: str = MOUNTINFO) -> str:
    """``/srv is a fuse.bindfs mount``, for a log line; "" when unknown."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            mount = mount_of(path, read_mounts(f.read()))
    except OSError:
        return ""
    return f"{mount.point} is a {mount.fstype} mount" if mount else ""
