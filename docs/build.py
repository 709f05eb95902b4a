"""Build the course website (``make site``): a static HTML site in docs/_build/html, entirely offline.

1. Every ``lectures/*.ipynb`` is executed with papermill in SMOKE mode (two at a time; results are cached in
   docs/_build/executed/ under a hash of the lecture, the ``cnncourse`` package and the alt-text hook, so an
   unchanged lecture is not run again). A hidden first cell gives every matplotlib figure its alt text.
2. The pages are prepared: a note on each lecture that it ran in SMOKE mode; the released assignments from
   assignments/ (never solutions/) with a note that they are read-only; a landing page with the lecture ->
   assignment map and time estimates (docs/landing.py).
3. Sphinx with myst-nb renders them (docs/conf.py); lectures are not executed again.

Usage: ``python docs/build.py [--jobs N] [--out DIR]``. Exits non-zero, naming the notebook, when a lecture
fails or an assignment page would show a solution or a hidden test.
"""
from __future__ import annotations

import argparse
import ast
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from landing import index_page  # noqa: E402

BUILD = HERE / "_build"
HOOK = HERE / "figure_alt.py"
SMOKE_NOTE = ("```{note}\nThis page was executed in **SMOKE mode** (`SMOKE = True`: small data, few epochs) to "
              "build the site quickly. The figures and numbers are real but come from that quick run; run the "
              "notebook yourself with `SMOKE = False` for the full results (`make lab`, then open "
              "`lectures/{name}`).\n```")
ASSIGNMENT_NOTE = ("```{note}\nA read-only copy of the notebook students receive. To work on it, open "
                   "`assignments/{name}/{name}.ipynb` in JupyterLab (`make lab`), replace each "
                   "`raise NotImplementedError()` and run the test cell below it; "
                   "`cnncourse validate assignments/{name}/{name}.ipynb` runs every visible test.\n```")
LECTURE_TIMEOUT_S = 300  # per lecture run; tests/test_lectures.py holds each to 90 s
KERNEL_STACKS = "kernel-stacks.txt"  # in the run's folder: where the kernel writes its stacks on SIGUSR1
FORBIDDEN = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "### BEGIN SOLUTION", "### END SOLUTION")


class SiteError(Exception):
    """A lecture or assignment that cannot go on the site, with the reason."""


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def package_digest() -> str:
    """Hash of the cnncourse package sources: a lecture's output depends on them too."""
    return _digest(*sorted((ROOT / "src" / "cnncourse").rglob("*.py")))


def with_hook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The lecture with a first, hidden cell that makes every figure carry its alt text (and has the kernel
    write its stacks to ``KERNEL_STACKS`` on SIGUSR1, for the report on a hung run)."""
    stacks = (f"import faulthandler as _fh, signal as _signal\n_site_stacks = open({KERNEL_STACKS!r}, 'w')\n"
              "_fh.register(_signal.SIGUSR1, file=_site_stacks, all_threads=True)  # docs/build.py: a hang's report\n")
    hook = nbformat.v4.new_code_cell(HOOK.read_text() + "\ninstall()\n" + stacks, metadata={"tags": ["site-hook"]})
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))  # a deep copy
    nb.cells.insert(0, hook)
    return nb


def lecture_cells(nb: nbformat.NotebookNode) -> list:
    """The cells of an executed lecture that are the lecture's own (not the hook, not papermill's parameters)."""
    return [c for c in nb.cells if not set(c.metadata.get("tags", [])) & {"site-hook", "injected-parameters"}]


def cached_path(lecture: Path, cache: Path, digest: str) -> Path:
    """Where ``execute`` keeps the SMOKE run of ``lecture`` for this lecture text and package ``digest``."""
    return cache / f"{lecture.stem}-{_digest(lecture, HOOK)}-{digest}.ipynb"


def _running_cell(executed: Path) -> str:
    """The cell papermill marks as running in the notebook it writes as it goes."""
    try:
        nb = nbformat.read(executed, as_version=4)
    except Exception:  # noqa: BLE001 - absent or half-written: the report says so
        return "(papermill's notebook could not be read)"
    for index, cell in enumerate(lecture_cells(nb)):
        if cell.metadata.get("papermill", {}).get("status") == "running":
            return f"the lecture's cell {index}: {cell.source[:300]!r}"
    return "(no cell running: papermill was starting or ending the kernel)"


def _hang_report(pid: int, work: Path, log: Path) -> str:
    """What a hung run was doing, then end it: the running cell, the kernel's process state and Python
    stacks (SIGUSR1, registered by the hook cell), papermill's stacks (SIGABRT with ``PYTHONFAULTHANDLER``
    prints them into ``log``). The kernel has a session of its own (jupyter_client): it is found as papermill's
    child, not by process group."""
    try:
        kernels = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        kernels = []
    states = []
    for kernel in kernels:
        try:
            stat = Path(f"/proc/{kernel}/stat").read_text().rsplit(")", 1)[1].split()
            wchan = Path(f"/proc/{kernel}/wchan").read_text()
            states.append(f"kernel {kernel}: state {stat[0]}, waiting in {wchan or '-'}")
        except OSError:
            states.append(f"kernel {kernel}: gone")
        with contextlib.suppress(OSError):
            os.kill(kernel, signal.SIGUSR1)
    time.sleep(1.0)
    stacks = work / KERNEL_STACKS
    kernel_stacks = stacks.read_text(errors="replace") if stacks.is_file() else ""
    for signum in (signal.SIGABRT, signal.SIGKILL):
        for target in (*kernels, pid):
            with contextlib.suppress(OSError):
                os.kill(target, signum)
        time.sleep(1.0)
    return "\n".join([f"running: {_running_cell(work / 'executed.ipynb')}",
                      *(states or ["papermill had no kernel process"]),
                      f"the kernel's stacks:\n{kernel_stacks.strip() or '(none written)'}",
                      f"papermill's output and stacks:\n{log.read_text(errors='replace')[-6000:]}"])


def _papermill(source: Path, target: Path, work: Path) -> tuple[int | None, str]:
    """Run ``source`` in SMOKE mode into ``target``; (exit status, papermill's output), or (None, a report of
    what it was doing) when it ran past ``LECTURE_TIMEOUT_S``. The output goes to a file, not a pipe, so that
    nothing papermill leaves behind can keep this build waiting for the end of it."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", PYTHONFAULTHANDLER="1")
    env.pop("MPLBACKEND", None)  # figures must be drawn inline to be captured
    cmd = [sys.executable, str(HERE / "run_lecture.py"), str(source), str(target), str(work)]
    log = work / "papermill.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=LECTURE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            report = _hang_report(proc.pid, work, log)
            proc.wait()
            return None, report
    return proc.returncode, log.read_text(errors="replace")[-8000:]


def execute(lecture: Path, cache: Path, digest: str) -> Path:
    """Run ``lecture`` in SMOKE mode (cached by content); return the executed notebook.

    A run still going after ``LECTURE_TIMEOUT_S`` (a SMOKE lecture takes well under a minute) has hung: what
    it was doing is printed (``_hang_report``) and it runs once more; a second hang, or an error in the
    lecture, raises ``SiteError`` with that report or papermill's output."""
    out = cached_path(lecture, cache, digest)
    if out.is_file():
        return out
    work = cache / f"{out.stem}.{os.getpid()}.run"  # private: the lecture tests and the site may run it at once
    for attempt in (1, 2):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        source = work / lecture.name
        nbformat.write(with_hook(nbformat.read(lecture, as_version=4)), source)
        code, log = _papermill(source, work / "executed.ipynb", work)
        if code is not None:
            break
        hung = f"lectures/{lecture.name} was still running after {LECTURE_TIMEOUT_S} s (attempt {attempt} of 2)"
        if attempt == 2:
            raise SiteError(f"{hung}.\n{log}")
        print(f"site: warning: {hung}; running it again.\n{log}", file=sys.stderr, flush=True)
    if code != 0:
        raise SiteError(f"lectures/{lecture.name} failed in SMOKE mode:\n{log[-3000:]}")
    for stale in cache.glob(f"{lecture.stem}-*.ipynb"):  # older versions of this lecture
        if stale != out:
            stale.unlink(missing_ok=True)
    (work / "executed.ipynb").replace(out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _caption_after(cells: list, index: int) -> str | None:
    """A caption the lecture gives right below a figure: a markdown cell starting with "Figure"."""
    if index + 1 < len(cells) and cells[index + 1].cell_type == "markdown":
        first = cells[index + 1].source.strip().split("\n\n")[0]
        plain = re.sub(r"[*_`]", "", first).strip()
        if re.match(r"(Figure|Fig\.)\b", plain):
            return plain
    return None


def _last_statement(source: str) -> str:
    """The cell's last statement on one line (at most 150 characters), e.g. ``plot_filters(model, ...)``."""
    try:
        body = ast.parse(source).body
        text = ast.get_source_segment(source, body[-1]) if body else ""
    except SyntaxError:  # IPython magics: the last line as it is
        lines = source.strip().splitlines()
        text = lines[-1] if lines else ""
    text = " ".join((text or "").split())
    return text if len(text) <= 150 else text[:147] + "..."


def _vague(alt: str) -> bool:
    return "“" not in alt and "x:" not in alt


def lecture_page(executed: Path, name: str, alts: dict[str, str]) -> nbformat.NotebookNode:
    """The executed lecture as a page: hook and injected parameters removed, the SMOKE note after the title,
    alt text collected (image hash -> text) into ``alts``; raises SiteError on an error output."""
    nb = nbformat.read(executed, as_version=4)
    nb.cells = lecture_cells(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                raise SiteError(f"lectures/{name}: cell {i} ends in {out.get('ename')}: {out.get('evalue')}")
            png = out.get("data", {}).get("image/png")
            if not png:
                continue
            alt = out.get("metadata", {}).get("image/png", {}).get("alt") or "Figure"
            caption = _caption_after(nb.cells, i)
            if caption and _vague(alt):
                alt = caption
            elif _vague(alt):
                statement = _last_statement(cell.source)
                alt += f", drawn by `{statement}`" if statement else ""
            alts[hashlib.sha256(base64.b64decode(png)).hexdigest()] = alt
    title_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(title_at + 1, nbformat.v4.new_markdown_cell(SMOKE_NOTE.replace("{name}", name)))
    return nb


def assignment_page(path: Path, name: str) -> nbformat.NotebookNode:
    """The released notebook as handed out, with a read-only note; refuses any solution or hidden test."""
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        leaked = [m for m in FORBIDDEN if m in cell.source]
        if leaked:
            raise SiteError(f"{path.relative_to(ROOT)} cell {i} contains {leaked}: release it again with "
                            f"`cnncourse release {name}` before building the site")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    title_at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), -1)
    nb.cells.insert(title_at + 1, nbformat.v4.new_markdown_cell(ASSIGNMENT_NOTE.replace("{name}", name)))
    return nb


def build(out: Path, jobs: int = 2) -> Path:
    """Build the whole site into ``out`` and return the path of its index.html."""
    lectures = sorted((ROOT / "lectures").glob("*.ipynb"))
    if not lectures:
        raise SiteError("lectures/ has no notebooks")
    src, cache = BUILD / "src", BUILD / "executed"
    shutil.rmtree(src, ignore_errors=True)
    for folder in (src / "lectures", src / "assignments", cache):
        folder.mkdir(parents=True, exist_ok=True)
    digest = package_digest()
    start = time.monotonic()

    def run(lecture: Path) -> Path:
        began = time.monotonic()
        executed = execute(lecture, cache, digest)
        print(f"site: {lecture.name} ({time.monotonic() - began:.0f} s)", flush=True)
        return executed

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        executed = dict(zip(lectures, pool.map(run, lectures)))
    print(f"site: {len(lectures)} lectures executed in SMOKE mode or taken from the cache "
          f"({time.monotonic() - start:.0f} s)", flush=True)
    alts: dict[str, str] = {}
    lecture_pages = []
    for path in lectures:
        page = lecture_page(executed[path], path.name, alts)
        nbformat.write(page, src / "lectures" / path.name)
        lecture_pages.append((path, page))
    assignment_pages = []
    for folder in sorted(p for p in (ROOT / "assignments").iterdir() if p.is_dir()):
        path = folder / f"{folder.name}.ipynb"
        if path.is_file():
            page = assignment_page(path, folder.name)
            nbformat.write(page, src / "assignments" / path.name)
            assignment_pages.append((folder.name, page))
    (src / "_alt_text.json").write_text(json.dumps(alts, indent=1, ensure_ascii=False))
    (src / "index.md").write_text(index_page(lecture_pages, assignment_pages))
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(HERE), str(src), str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SiteError(f"sphinx-build failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="lectures executed at the same time (default 2)")
    parser.add_argument("--out", type=Path, default=BUILD / "html", help="output folder (default docs/_build/html)")
    args = parser.parse_args(argv)
    try:
        index = build(args.out.resolve(), args.jobs)
    except SiteError as exc:
        print(f"site: error: {exc}", file=sys.stderr)
        return 1
    print(f"site: open {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
