"""The hostile and broken submissions of the battery: what each student's cells do, and what each must get.

``EXPECTED[student] = (score, status, per-cell scores or None, text the summary line must contain)``.
Built on the released ``tiny`` notebook by ``build_class``; the course root and a planted secret are written
into the attacks, so a sandbox leak would show up as a wrong answer or a changed file."""
from __future__ import annotations

import nbformat
from helpers import ADD_OK, ANSWERS_OK, MEAN_OK, SQUARE_OK, answered, cell_by_id, submit

SECRET = "planted-secret-4711"  # in CNNCOURSE_SECRET / CNNCOURSE_DB of the grading run
ESCAPE_MARK = "313.25"  # `sleep 313.25`: the process a submission tries to leave behind

FORK_BOMB = """\
import os, time
for _ in range(300):            # bounded on purpose: the grader must stop it long before
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
"""
DISK_BOMB = """\
with open("junk.bin", "wb") as f:          # stopped by the file-size limit (OSError: File too large)
    while True:
        f.write(bytes(1024 * 1024))
"""
# Looks for everything a kernel must not see; any hit makes `add` wrong (and is printed).
READ_OTHERS = """\
import glob, os
found = []
for path in [{root!r} + "/solutions/tiny/tiny.ipynb", {root!r} + "/gradebook.db", {root!r} + "/nbgrader_config.py",
             {root!r} + "/submitted/good/tiny/tiny.ipynb", {root!r} + "/autograded"]:
    if os.path.exists(path):
        found.append(path)
found += [p for p in glob.glob("/tmp/**/*.ipynb", recursive=True) + glob.glob("/run/**/*.ipynb", recursive=True)]
found += glob.glob("/tmp/cnncourse-grade-*") + glob.glob("/tmp/**/gradebook.db", recursive=True)
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    for what in ("environ", "cmdline"):
        try:
            text = open(f"/proc/{{pid}}/{{what}}", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if {secret!r} in text or {root!r} in text or "gradebook" in text:
            found.append(f"/proc/{{pid}}/{{what}}")
found += [k for k, v in os.environ.items() if k.startswith("CNNCOURSE") or {secret!r} in v]
print("found:", found)
def add(a, b):
    return a + b if not found else 0
"""
SABOTAGE = """\
import glob, os
for path in [{root!r} + "/submitted/good/tiny/tiny.ipynb", {root!r} + "/gradebook.db",
             *glob.glob("/tmp/cnncourse-grade-*/**/gradebook.db", recursive=True)]:
    for act in (os.remove, lambda p: open(p, "w").write("{{}}")):
        try:
            act(path)
        except OSError:
            pass
"""
KILL_GRADER = """\
import os, signal
for pid in [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    if pid != os.getpid():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
try:
    os.kill(os.getppid(), signal.SIGKILL)
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
"""
ESCAPE = f"""\
import os
if os.fork() == 0:          # a daemon in its own session that would edit grades later
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{ESCAPE_MARK}"])
    os._exit(0)
"""
SILENT_KERNEL = """\
kernel = get_ipython().kernel     # alive and idle, but it never again says that a cell finished
_send = kernel.session.send
def _drop_execute_replies(stream, msg_or_type, *args, **kwargs):
    if msg_or_type == "execute_reply" or getattr(msg_or_type, "get", dict().get)("msg_type") == "execute_reply":
        return {"header": {}, "content": {"status": "ok"}}   # what ipykernel reads back; nothing is sent
    return _send(stream, msg_or_type, *args, **kwargs)
kernel.session.send = _drop_execute_replies
"""
IGNORE_SIGINT = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
LONG_C_CALL = "sum(range(10 ** 12))   # one C call: the interrupt is not seen until it returns\n"
HOOKS = """\
import ast, sys
class _NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()
get_ipython().ast_transformers.append(_NoAsserts())
get_ipython().events.register("pre_run_cell", lambda info: None)
sys.settrace(lambda *a: None)
class _Finder:
    def find_spec(self, *a, **k):
        return None
sys.meta_path.insert(0, _Finder())
def add(a, b):
    return 0                          # wrong: only the removed asserts would let it pass
"""
DISK_FILL = """\
import os
written = 0
try:
    for i in range(100):
        with open(f"fill_{i}.bin", "wb") as f:
            f.write(bytes(1024 * 1024))
        written += 1
except OSError:
    pass
print("files written:", written)
"""

EXPECTED = {
    "good": (6, "graded", None, ""),
    "good2": (6, "graded", None, ""),
    "blank": (0, "graded", None, ""),
    "raises": (0, "graded", None, ""),
    "loop": (4, "timed out", {"test_add": 0, "test_square": 3, "test_mean": 1}, "cell time limit (6 s)"),
    "slow": (5, "timed out", {"test_add": 2, "test_square": 3, "test_mean": 0}, "notebook time limit"),
    "memory": (3, "graded", {"test_add": 2, "test_square": 0, "test_mean": 1}, ""),
    "osexit": (2, "crashed", {"test_add": 2, "test_square": 0, "test_mean": 0}, "kernel died"),
    "sysexit": (5, "graded", {"test_add": 2, "test_square": 3, "test_mean": 0}, ""),
    "deleted_tests": (6, "graded", None, "restored deleted cells"),
    "edited_tests": (4, "graded", {"test_add": 0, "test_square": 3, "test_mean": 1}, ""),
    "reordered": (6, "graded", None, ""),
    "disk_bomb": (3, "graded", {"test_add": 2, "test_square": 0, "test_mean": 1}, ""),
    "disk_fill": (6, "graded", None, ""),
    "corrupted": (0, "invalid notebook", None, "not a readable notebook"),
    "renamed": (6, "graded", None, "renamed"),
    "missing": (0, "missing notebook", None, "not submitted"),
    "huge_output": (6, "graded", None, ""),
    "many_outputs": (6, "graded", None, ""),
    "fork_bomb": (2, "crashed", {"test_add": 2, "test_square": 0, "test_mean": 0}, "process limit (32)"),
    "read_others": (6, "graded", None, ""),
    "sabotage": (6, "graded", None, ""),
    "kill_grader": (6, "graded", None, ""),
    "escape": (6, "graded", None, ""),
    "ignore_sigint": (5, "timed out", {"test_add": 2, "test_square": 3, "test_mean": 0},
                      "kernel ignored the interrupt"),
    "long_c_call": (2, "timed out", {"test_add": 2, "test_square": 0, "test_mean": 0},
                    "kernel ignored the interrupt"),
    "silent_kernel": (5, "crashed", {"test_add": 2, "test_square": 3, "test_mean": 0},
                      "stopped answering the grader"),
    "duplicated": (6, "graded", None, "duplicated graded cells"),
    "hooks": (4, "graded", {"test_add": 0, "test_square": 3, "test_mean": 1}, ""),
    "symlink_other": (0, "missing notebook", None, "tiny.ipynb: a symbolic link, not graded"),
    "symlink_devzero": (6, "graded", None, "data.bin: a symbolic link, not graded"),
    "many_files": (6, "graded", None, "the submission is over 2 MB in all"),
}


def build_class(root, released) -> None:
    """One submission per entry of ``EXPECTED`` under ``root/submitted/``."""
    ok = answered(released, ANSWERS_OK)
    for student in ("good", "good2"):
        submit(root, student, ok)
    submit(root, "blank", released)
    nb = answered(released, {k: "raise RuntimeError('boom')" for k in ANSWERS_OK})
    for cell in nb.cells:  # every cell raises, the locked/test ones too (their source copy is graded)
        if cell.cell_type == "code":
            cell.source = "raise RuntimeError('boom')\n" + cell.source
    nb.cells.insert(0, nbformat.v4.new_code_cell("raise RuntimeError('first')"))
    submit(root, "raises", nb)
    submit(root, "loop", answered(released, {**ANSWERS_OK, "add": "while True:\n    pass"}))
    submit(root, "slow", answered(released, {**ANSWERS_OK, "square": "time.sleep(5)\n" + SQUARE_OK,
                                             "mean": "time.sleep(60)\n" + MEAN_OK}))
    submit(root, "memory", answered(released, {
        **ANSWERS_OK, "square": "_hog = []\nwhile True:\n    _hog.append(bytes(64 * 1024 * 1024))\n" + SQUARE_OK}))
    submit(root, "osexit", answered(released, {**ANSWERS_OK, "square": "import os\nos._exit(1)"}))
    submit(root, "sysexit", answered(released, {**ANSWERS_OK, "mean": "import sys\nsys.exit(3)"}))
    nb = answered(released, ANSWERS_OK)
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in
                ("test_add", "test_square", "setup")]
    submit(root, "deleted_tests", nb)
    nb = answered(released, {**ANSWERS_OK, "add": "def add(a, b):\n    return a - b"})
    cell_by_id(nb, "test_add").source = "pass  # tests? what tests?"
    submit(root, "edited_tests", nb)
    nb = answered(released, ANSWERS_OK)  # test_mean first, the setup last: graded in the source's order
    setup, test_mean = cell_by_id(nb, "setup"), cell_by_id(nb, "test_mean")
    nb.cells = [test_mean] + [c for c in nb.cells if c is not setup and c is not test_mean] + [setup]
    submit(root, "reordered", nb)
    submit(root, "disk_bomb", answered(released, {**ANSWERS_OK, "square": DISK_BOMB + SQUARE_OK}))
    submit(root, "disk_fill", answered(released, {**ANSWERS_OK, "square": DISK_FILL + SQUARE_OK}))
    text = nbformat.writes(ok)
    submit(root, "corrupted", raw=text[: len(text) // 2])
    submit(root, "renamed", ok, name="tiny-Copy1.ipynb")
    (submit(root, "missing") / "notes.txt").write_text("I could not make it work")
    submit(root, "huge_output", answered(released, {**ANSWERS_OK, "mean": "print('x' * (50 * 1024 * 1024))\n"
                                                                         + MEAN_OK}))
    nb = answered(released, ANSWERS_OK)
    nb.cells += [nbformat.v4.new_code_cell("print('y' * 900_000)") for _ in range(12)]
    submit(root, "many_outputs", nb)
    submit(root, "fork_bomb", answered(released, {**ANSWERS_OK, "square": FORK_BOMB}))
    fmt = {"root": str(root), "secret": SECRET}
    submit(root, "read_others", answered(released, {**ANSWERS_OK, "add": READ_OTHERS.format(**fmt)}))
    submit(root, "sabotage", answered(released, {**ANSWERS_OK, "add": SABOTAGE.format(**fmt) + ADD_OK}))
    submit(root, "kill_grader", answered(released, {**ANSWERS_OK, "square": KILL_GRADER + SQUARE_OK}))
    submit(root, "escape", answered(released, {**ANSWERS_OK, "square": ESCAPE + SQUARE_OK}))
    submit(root, "ignore_sigint", answered(released, {**ANSWERS_OK, "mean": IGNORE_SIGINT}))
    submit(root, "long_c_call", answered(released, {**ANSWERS_OK, "square": LONG_C_CALL + SQUARE_OK}))
    submit(root, "silent_kernel", answered(released, {**ANSWERS_OK, "mean": MEAN_OK + "\n" + SILENT_KERNEL}))
    nb = answered(released, ANSWERS_OK)
    i = nb.cells.index(cell_by_id(nb, "test_add"))
    nb.cells.insert(i + 1, nbformat.from_dict({**dict(cell_by_id(nb, "test_add")), "id": "copy1"}))  # copied
    nb.cells.append(nbformat.from_dict({**dict(cell_by_id(nb, "mean")), "id": "copy2", "source": MEAN_OK + "  # again"}))
    submit(root, "duplicated", nb)
    submit(root, "hooks", answered(released, {**ANSWERS_OK, "add": HOOKS}))
    folder = submit(root, "symlink_other")
    (folder / "tiny.ipynb").symlink_to(root / "submitted" / "good" / "tiny" / "tiny.ipynb")
    folder = submit(root, "symlink_devzero", ok)
    (folder / "data.bin").symlink_to("/dev/zero")
    folder = submit(root, "many_files", ok)
    for i in range(20):
        (folder / f"junk_{i:02d}.bin").write_bytes(bytes(300_000))
