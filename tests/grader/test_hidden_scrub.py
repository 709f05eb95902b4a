"""Feedback never shows hidden tests or solutions: ScrubHidden on notebooks with planted lines."""
import json

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from cnncourse.grader.scrub import ScrubHidden, protected_lines, scrub_text

HIDDEN_LINE = 'hidden.check("secret_sizes", lambda n, k: conv_output_size(n, k, stride=3))'
SOLUTION_LINE = "return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1"
ORACLE_LINE = "want = measured_receptive_field(layers)  # oracle internals"


def source_notebook():
    sol = new_code_cell(f"def conv_output_size(n, kernel):\n    ### BEGIN SOLUTION\n    {SOLUTION_LINE}\n"
                        "    ### END SOLUTION")
    sol.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "sol"}
    test = new_code_cell(f"assert conv_output_size(7, 3) == 5\n### BEGIN HIDDEN TESTS\n{HIDDEN_LINE}\n"
                         "### END HIDDEN TESTS")
    test.metadata["nbgrader"] = {"solution": False, "grade": True, "locked": True, "grade_id": "test",
                                 "points": 1}
    return new_notebook(cells=[sol, test])


def graded_notebook():
    """An autograded notebook whose outputs plant hidden, solution and oracle lines in every way."""
    nb = source_notebook()
    nb.cells[0].source = "def conv_output_size(n, kernel):\n    return 5"  # the student's answer
    student = new_code_cell("print(In[2])")  # a student cell printing the test cell's source
    student.outputs = [
        new_output("stream", name="stdout", text=f"my own output\n{nb.cells[1].source}\n{SOLUTION_LINE}\n"),
        new_output("error", ename="ValueError", evalue=f"{HIDDEN_LINE}\nkeep this",
                   traceback=["\x1b[0;31mValueError\x1b[0m", f"\x1b[0;32m----> 3\x1b[0m {HIDDEN_LINE}",
                              "my traceback line"]),
        new_output("display_data", data={"text/html": f"<pre>{HIDDEN_LINE.replace(chr(34), '&quot;')}</pre>\n<b>ok</b>",
                                         "text/plain": f"  {ORACLE_LINE}\nplain ok",
                                         "application/json": {"code": SOLUTION_LINE}}),
        new_output("execute_result", data={"text/plain": "42"}, execution_count=1),
    ]
    nb.cells.insert(1, student)
    test = nb.cells[2]
    test.outputs = [new_output("stream", name="stdout", text=f"{HIDDEN_LINE}\nvisible tests passed\n"),
                    new_output("display_data", data={"text/html": f"<i>{SOLUTION_LINE}</i>"}),
                    new_output("error", ename="HiddenTestFailed",
                               evalue=f"hidden test secret_sizes: 3 of 20 cases wrong\n{HIDDEN_LINE}", traceback=[])]
    return nb


def course(tmp_path):
    folder = tmp_path / "solutions" / "a1"
    folder.mkdir(parents=True)
    nbformat.write(source_notebook(), folder / "a1.ipynb")
    (folder / "oracle.py").write_text(f"def check(case, got):\n    {ORACLE_LINE}\n")
    return tmp_path


def test_protected_lines_come_from_hidden_tests_solutions_and_the_oracle(tmp_path):
    lines = protected_lines(course(tmp_path) / "solutions" / "a1")
    assert {HIDDEN_LINE, SOLUTION_LINE, ORACLE_LINE, "### BEGIN HIDDEN TESTS"} <= lines
    assert "assert conv_output_size(7, 3) == 5" not in lines  # visible tests are the student's to see
    assert scrub_text(f"a\n{HIDDEN_LINE}\nb", lines) == "a\nb"


def test_feedback_keeps_only_the_failure_message_and_no_planted_line(tmp_path):
    root = course(tmp_path)
    nb, _ = ScrubHidden(course_root=str(root)).preprocess(
        graded_notebook(), {"nbgrader": {"assignment": "a1", "student": "s", "notebook": "a1"}, "metadata": {}})
    text = json.dumps(nb)
    for planted in (HIDDEN_LINE, SOLUTION_LINE, ORACLE_LINE, HIDDEN_LINE.replace('"', "&quot;")):
        assert planted not in text and json.dumps(planted)[1:-1] not in text
    test = nb.cells[2]
    assert "### BEGIN HIDDEN TESTS" not in test.source and "assert conv_output_size(7, 3) == 5" in test.source
    (error,) = test.outputs
    assert error.ename == "HiddenTestFailed" and error.evalue.strip() == "hidden test secret_sizes: 3 of 20 cases wrong"
    student = nb.cells[1].outputs
    assert "my own output" in student[0].text and "keep this" in student[1].evalue
    assert "my traceback line" in student[1].traceback and len(student[1].traceback) == 2
    assert "<b>ok</b>" in student[2].data["text/html"] and "plain ok" in student[2].data["text/plain"]
    assert "application/json" not in student[2].data and student[3].data["text/plain"] == "42"


def test_a_passing_test_cell_shows_nothing(tmp_path):
    root = course(tmp_path)
    nb = graded_notebook()
    nb.cells[2].outputs = nb.cells[2].outputs[:2]
    nb, _ = ScrubHidden(course_root=str(root)).preprocess(nb, {"nbgrader": {"assignment": "a1"}, "metadata": {}})
    assert nb.cells[2].outputs == []
