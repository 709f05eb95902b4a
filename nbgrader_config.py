"""nbgrader configuration of the course: the repository root is the course directory.

Source notebooks (with reference solutions and hidden tests) live in ``solutions/<assignment>/``;
``cnncourse release`` writes the student versions to ``assignments/<assignment>/``. Submissions go in
``submitted/<student>/<assignment>/`` and grades in ``gradebook.db`` at the root unless the
``CNNCOURSE_DB`` environment variable gives another SQLAlchemy URL (e.g. PostgreSQL for a class).
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "cnncourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.db_url = os.environ.get("CNNCOURSE_DB", f"sqlite:///{ROOT / 'gradebook.db'}")
# Release every notebook found in solutions/<assignment>/ (no gradebook entry needed beforehand).
c.GenerateAssignment.create_assignment = True

# Student stubs: a clear marker and an exception, so unattempted cells fail loudly and score 0.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading limits: a cell gets 60 s (nbgrader's default is 30 s, too tight on a shared 2-core grader);
# `cnncourse grade` adds whole-notebook and memory limits on top.
c.ExecutePreprocessor.timeout = 60
c.Execute.timeout = 60

# Every student kernel runs in the bubblewrap sandbox (cnncourse.grader.execute.SandboxedExecute).
# Hidden tests (cnncourse.grader.hidden): PlaceCases writes each student's inputs next to the notebook before
# execution, CheckAnswers checks the published answers with the oracles of solutions/<assignment>/oracle.py
# after it; nbgrader's defaults stay around them. Every grading path (nbgrader autograde, cnncourse grade,
# cnncourse validate) uses these lists.
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, GetGrades,  # noqa: E402
                                    IgnorePattern, LimitOutput, SaveAutoGrades)

c.HiddenTestsPreprocessor.course_root = str(ROOT)
c.Autograde.autograde_preprocessors = [
    "cnncourse.grader.hidden.PlaceCases", "cnncourse.grader.execute.SandboxedExecute",
    "cnncourse.grader.hidden.CheckAnswers",
    IgnorePattern, ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata,
]
# Feedback shows a test cell's failure message only, never hidden tests or solution lines (cnncourse.grader.scrub).
c.GenerateFeedback.preprocessors = [GetGrades, "cnncourse.grader.scrub.ScrubHidden", CSSHTMLHeaderPreprocessor]
# The oracles (and the course secret's folder) are instructor-only: never copied to assignments/ or students.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "oracle.py", "oracle_*.py",
                            ".cnncourse",
                            ".cnncourse_cases.json"]
