"""pandas reads a local Parquet file by its path through Arrow's filesystem, not a Python file object.

Given one local file, pandas 2 opens it itself and hands pyarrow the Python file object. Arrow's
thread pool may still hold that object when the interpreter finalises, and a script that worked
then dies at its very end: "terminate called without an active exception", exit status 134, or a
hang after its last line (apache/arrow#34314, #50482, open). In this image it was 11 runs in 100 of
``python3 -c "import pandas as pd; pd.read_parquet('one.parquet')"``; 0 in 100 when the same read
goes by path with ``filesystem=pyarrow.fs.LocalFileSystem()``, as a folder of partitions already
does. So ``pandas.read_parquet`` is given that filesystem for a local file when the caller gave
none, and nothing else changes: same arguments, same DataFrame.

The wrapping happens when pandas is first imported (the ``tre_parquet_reads.pth`` line imports this
module at interpreter start-up; it imports neither pandas nor pyarrow itself).
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import os
import sys

WRAPPED = "__tre_local_file_by_path__"


def _local_file(path) -> str | None:
    """The absolute path of ``path`` when it names an existing local file, else None."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        return None
    path = os.fspath(path)
    if not isinstance(path, str) or "://" in path or not os.path.isfile(path):
        return None
    return os.path.abspath(path)


def wrap(read_parquet):
    """``read_parquet`` that reads a local file by path through Arrow's LocalFileSystem."""
    if getattr(read_parquet, WRAPPED, False):
        return read_parquet

    @functools.wraps(read_parquet)
    def by_path(path, *args, **kwargs):
        engine = args[0] if args else kwargs.get("engine", "auto")
        local = _local_file(path)
        if (local is not None and len(args) <= 5 and engine in ("auto", "pyarrow")
                and kwargs.get("filesystem") is None and not kwargs.get("storage_options")):
            from pyarrow import fs

            kwargs["filesystem"] = fs.LocalFileSystem()
            path = local
        return read_parquet(path, *args, **kwargs)

    setattr(by_path, WRAPPED, True)
    return by_path


def patch(pandas) -> None:
    """Wrap pandas' read_parquet wherever pandas' own namespaces hold it."""
    from pandas.io import api, parquet

    wrapped = wrap(parquet.read_parquet)
    for namespace in (parquet, api, pandas):
        if getattr(namespace, "read_parquet", None) is not None:
            namespace.read_parquet = wrapped


class _WhenPandasLoads(importlib.abc.MetaPathFinder):
    """Finds nothing itself: lets the usual finders find pandas, then patches it once loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "pandas":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_patch(module):
            exec_module(module)
            try:
                patch(module)
            except Exception as error:  # a pandas without these names: reads as it always did
                print(f"tre_parquet_reads: pandas.read_parquet left as it is ({error!r})", file=sys.stderr)

        loader.exec_module = exec_then_patch
        return spec


def install() -> None:
    if "pandas" in sys.modules:
        patch(sys.modules["pandas"])
    elif not any(isinstance(finder, _WhenPandasLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WhenPandasLoads())


install()
