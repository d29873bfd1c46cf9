"""Run one harness under atheris (libFuzzer): ``python -m tests.fuzz.run NAME [libFuzzer flags]``.

The checks' modules are instrumented for coverage; the seeds are written to a corpus folder (the
first argument after the flags, or a temporary one). A crash or a hang (``-timeout=10``) stops the
run with libFuzzer's report and writes the input as ``crash-*`` / ``timeout-*`` in the working folder.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["egress_review"]):
    from egress_review.checks import files, strip, tables  # noqa: F401 - instrumented for coverage

from tests.fuzz.harnesses import HARNESSES


def main() -> None:
    name, flags = sys.argv[1], sys.argv[2:]
    harness, seeds = HARNESSES[name]
    corpus = Path(next((f for f in flags if not f.startswith("-")), "") or tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds()):
        (corpus / f"seed-{n}").write_bytes(seed)
    if str(corpus) not in flags:
        flags.append(str(corpus))
    atheris.Setup([sys.argv[0], *flags], harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
