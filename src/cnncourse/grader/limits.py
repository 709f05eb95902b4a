"""Per-submission limits of ``cnncourse grade`` (one value object, passed to the worker and the kernel)."""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class Limits:
    """What one submission may use. Time in seconds, sizes in MB (``output_bytes`` in bytes).

    ``file_mb`` caps one file the kernel writes (``RLIMIT_FSIZE``), ``disk_mb`` all it writes (the size of the
    sandbox's private ``/tmp``), ``submission_mb`` the submitted files the grader reads at all (notebooks first),
    ``output_bytes`` one cell's output and ``notebook_output_bytes`` a whole notebook's."""

    timeout_cell: int = 60
    timeout_notebook: int = 600
    memory_mb: int = 4096
    max_procs: int = 64
    file_mb: int = 1024
    disk_mb: int = 1024
    submission_mb: int = 100
    output_bytes: int = 1_000_000
    notebook_output_bytes: int = 5_000_000
    threads: int = 1  # OMP/MKL threads per kernel (jobs x threads <= cores)
    sandbox: bool = True
    warm_kernels: bool = True  # fork kernels from the run's zygote (zygote.py) instead of starting each cold

    def kernel_threads(self, jobs: int | None) -> int:
        """``threads``, or when it is 0 or less the cores shared among ``jobs`` kernels running at once (None:
        one per core)."""
        cores = os.cpu_count() or 1
        return self.threads if self.threads > 0 else max(1, cores // max(1, jobs or cores))
