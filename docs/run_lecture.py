"""Run one lecture in SMOKE mode with papermill: ``python docs/run_lecture.py SOURCE TARGET WORKDIR``.

docs/build.py starts this once per lecture. It is papermill's own ``execute_notebook`` (the notebook is
written as it runs; a failing cell ends the run with papermill's error) on ``cnncourse.channels``' kernel
manager: papermill's default client can wait forever for a reply already on its socket (see that module).
"""
from __future__ import annotations

import sys

import papermill

from cnncourse.channels import ReliableKernelManager


def main(source: str, target: str, workdir: str) -> None:
    papermill.execute_notebook(source, target, parameters={"SMOKE": True}, kernel_name="python3", cwd=workdir,
                               progress_bar=False, kernel_manager_class=ReliableKernelManager)


if __name__ == "__main__":
    main(*sys.argv[1:])
