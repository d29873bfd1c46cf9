"""The host side of storage quotas: each ``QuotaVolume`` of a plan becomes an ext4 filesystem of
exactly its quota, kept in an image file and loop-mounted on its folder, before the workspace's
folders are prepared and bind-mounted. Runs as root on the host (the hub), in the start pool.

Why a filesystem per quota rather than a polling script or one shared filesystem: the kernel then
stops a write past the quota with "No space left on device", at once, inside that filesystem only;
the host's own disk, the databases, the egress store and the other projects never notice. ext4
rather than XFS project quotas: it needs nothing beyond e2fsprogs and works for sizes as small as a
test's (XFS wants 300 MB at least), and usage is ``df`` inside the workspace. With ``preallocate``
the image's blocks are reserved when it is made (``fallocate``), so quotas can never add up to more
than the disk; and no image is made or grown past ``reserve`` bytes left free on the host, which
stays for the databases and the egress store.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from datasets.quotas import human
from spawner.plan import QuotaVolume

log = logging.getLogger("tre.storage")
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


class StorageRefused(RuntimeError):
    """The host cannot give a workspace its storage; the message says what to do."""


def _run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


def _lock(image: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(image, threading.Lock())


def mounted_source(folder: Path) -> str | None:
    """The device mounted on ``folder`` (``/dev/loop3``), or None."""
    target = os.path.realpath(folder)
    with open("/proc/self/mountinfo") as table:
        for line in table:
            fields = line.split()
            if fields[4] == target:
                return fields[fields.index("-") + 2]
    return None


def _make_room(image: Path, size: int, preallocate: bool, reserve: int) -> None:
    """Give ``image`` ``size`` bytes, never leaving less than ``reserve`` free on the host."""
    has = image.stat().st_blocks * 512 if image.exists() else 0
    needs = size - has if preallocate else 0
    free = shutil.disk_usage(image.parent).free
    if needs > 0 and free - needs < reserve:
        raise StorageRefused(
            f"The host has {human(free)} free; reserving {human(needs)} for {image.name} would leave less than "
            f"the {human(reserve)} kept for the databases and the egress store. An administrator frees disk "
            "space or lowers the quota, then the workspace can start.")
    with open(image, "ab") as handle:
        if preallocate:
            os.posix_fallocate(handle.fileno(), 0, size)
        handle.truncate(size)


def _format(image: Path) -> None:
    # -m 0: the whole quota is the researchers'; no root-reserved blocks inside a workspace's disk.
    # nodiscard and no lazy init: mkfs, or the kernel zeroing inode tables after the first mount,
    # would otherwise punch holes in the image through the loop device, undoing its preallocation.
    _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", "-L", "tre-quota", str(image))


def _mount(image: Path, folder: Path) -> None:
    _run("mount", "-o", "loop,nosuid,nodev", str(image), str(folder))


def _adopt_existing(folder: Path, image: Path) -> None:
    """A folder used before quotas (an upgrade): move what it holds into the new filesystem."""
    if not any(folder.iterdir()):
        return
    staging = Path(tempfile.mkdtemp(prefix=".tre-quota-", dir=image.parent))
    try:
        _mount(image, staging)
        try:
            for entry in list(folder.iterdir()):
                shutil.move(str(entry), staging / entry.name)
        finally:
            _run("umount", str(staging))
    finally:
        staging.rmdir()


def ensure_volume(volume: QuotaVolume, *, preallocate: bool, reserve: int) -> None:
    """Make, grow and mount one quota's filesystem; idempotent, safe for concurrent starts."""
    with _lock(volume.image):
        volume.image.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        volume.folder.mkdir(parents=True, exist_ok=True)
        device = mounted_source(volume.folder)
        if not volume.image.exists():
            if device is not None:
                raise StorageRefused(f"{volume.folder} has something else mounted on it; an administrator "
                                     "unmounts it, then the workspace can start.")
            # made under another name and renamed once whole: a failure leaves no half-made image
            fresh = volume.image.with_name(volume.image.name + ".new")
            fresh.unlink(missing_ok=True)
            _make_room(fresh, volume.size, preallocate, reserve)
            _format(fresh)
            _make_room(fresh, volume.size, preallocate, reserve)  # mkfs zeroes some ranges by punching holes
            _adopt_existing(volume.folder, fresh)
            fresh.rename(volume.image)
        elif volume.image.stat().st_size < volume.size:  # the steward raised the quota
            _make_room(volume.image, volume.size, preallocate, reserve)
            if device is not None:
                _run("losetup", "--set-capacity", device)
                try:
                    _run("resize2fs", device)
                except RuntimeError as error:
                    # online growth needs CAP_SYS_RESOURCE, which a confined hub may lack: the
                    # filesystem keeps its size until it is next mounted (offline growth below)
                    log.warning("%s keeps its size until it is next mounted: %s", volume.folder, error)
            else:
                _run("e2fsck", "-f", "-p", str(volume.image))
                _run("resize2fs", str(volume.image))
        # a lowered quota keeps the filesystem's size: shrinking could lose files (the pages show both)
        if device is None:
            _mount(volume.image, volume.folder)
            lost = volume.folder / "lost+found"
            if lost.is_dir() and not any(lost.iterdir()):
                lost.rmdir()


def ensure_volumes(volumes: tuple[QuotaVolume, ...], *, preallocate: bool, reserve: int) -> None:
    for volume in volumes:
        ensure_volume(volume, preallocate=preallocate, reserve=reserve)


def release_all(workspaces_root: Path) -> list[str]:
    """Unmount every quota filesystem below ``workspaces_root`` (an uninstall, a test's end);
    the images stay. Returns the folders unmounted."""
    root = os.path.realpath(workspaces_root) + os.sep
    with open("/proc/self/mountinfo") as table:
        folders = [line.split()[4] for line in table if line.split()[4].startswith(root)]
    for folder in sorted(folders, key=len, reverse=True):
        _run("umount", "--lazy", folder)
    return folders
