"""The instructor's side of the course: grading a class on top of nbgrader, one job per module.

``layout`` (the course and its config, read once), ``limits``, ``intake`` (reading a submission: regular files
only), ``repair`` (rebuilding notebooks in the source's order), ``sandbox`` + ``kernel`` (bubblewrap around
every student kernel), ``zygote`` + ``warm`` (warm kernels forked into each submission's fresh sandbox;
``tracebacks``: their cheaper, identical tracebacks), ``kernel_guard`` (runs in the kernel: clears hooks before
test cells), ``execute`` (``SandboxedExecute``, the nbgrader preprocessor), ``hidden``/``cases``/``secret``/
``scrub`` (hidden tests whose answers never enter the kernel; feedback scrubbing), ``gradebook``, ``worker`` (one
submission), ``scheduler`` (``cnncourse grade``), ``procs`` (process trees), ``verdicts`` (oracle verdicts shared
by a run's workers), ``forkserver`` + ``dask_backend`` (grading on a Dask cluster), ``journal`` (resume, logs, the
class lock), ``result``, ``feedback``, ``export``, ``lms`` (grade imports for an LMS), ``report`` (the class
report) and ``validate``. Which preprocessors run is configured in the course's ``nbgrader_config.py``.
"""
