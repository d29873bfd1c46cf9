"""Is a dataset on disk still what the catalogue registered? Checked before every mount.

The whole tree is compared with the version's manifest by path, size, inode and modification
time (``datasets.manifest.verify_tree``): a folder leading outside the data root, a link
anywhere, a file added, removed, renamed or changed refuses the mount, naming the file. Nothing
is read or cached, so a start right after a hub restart costs what any other start does; the
content itself is re-hashed in the background by the scrubber (``datasets.scrub``).
"""

from __future__ import annotations

from pathlib import Path

from datasets.manifest import TreeChanged, verify_tree


class DatasetIntegrityError(Exception):
    def __init__(self, dataset: str, problem: str) -> None:
        self.dataset, self.problem = dataset, problem
        super().__init__(f"dataset {dataset}: {problem}")


def verify_dataset_folder(dataset: str, data_root: Path, folder: Path, files: list | tuple) -> None:
    """Raise ``DatasetIntegrityError`` unless ``folder`` matches the manifest rows ``files``."""
    root = data_root.resolve()
    if not folder.resolve().is_relative_to(root):
        raise DatasetIntegrityError(dataset, f"its folder leads outside the data root (to {folder.resolve()})")
    if not files:
        raise DatasetIntegrityError(dataset, "it has no manifest (registered before manifests existed); "
                                             "a data steward registers it again with `tre datasets add`")
    try:
        verify_tree(folder, [list(row) for row in files])
    except TreeChanged as changed:
        raise DatasetIntegrityError(dataset, changed.problem) from None
