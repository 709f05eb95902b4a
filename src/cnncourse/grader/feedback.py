"""``cnncourse feedback``: nbgrader's ``GenerateFeedback`` per student with the preprocessors the course
config lists (``c.GenerateFeedback.preprocessors``: grades, the hidden-test/solution scrubber, CSS). One
damaged autograded notebook is reported and the others still get their feedback."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnncourse import course
from cnncourse.grader.layout import Course


@dataclass
class FeedbackRun:
    """Files written, and one line per student whose feedback could not be made."""

    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def feedback(root: Path, assignment: str, students: list[str] | None = None, db_url: str | None = None,
             force: bool = True) -> FeedbackRun:
    """HTML feedback in ``feedback/<student>/<assignment>/`` from the autograded notebooks and the gradebook."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    from cnncourse.grader.gradebook import quiet_log

    crs = Course.load(root, db_url)
    run = FeedbackRun()
    graded = crs.root / "autograded"
    targets = students or sorted(p.name for p in graded.glob("*")
                                 if (p / assignment).is_dir() and not p.name.startswith("."))
    for student in targets:
        if not (graded / student / assignment).is_dir():
            raise course.CourseError(f"{student} has no autograded {assignment}: run `cnncourse grade {assignment}`")
        cfg = crs.nbgrader_config(
            CourseDirectory={"root": str(crs.root), "db_url": crs.db_url, "assignment_id": assignment,
                             "student_id": student},
            GenerateFeedback={"force": force})
        try:
            GenerateFeedback(coursedir=CourseDirectory(config=cfg), config=cfg, log=quiet_log()).start()
        except BaseException as exc:  # a damaged notebook: nbgrader logged it; the class goes on
            if isinstance(exc, KeyboardInterrupt):
                raise
            run.problems.append(f"{student}: no feedback ({type(exc).__name__}: {str(exc)[:160]}); check "
                                f"autograded/{student}/{assignment}/ or regrade with --force")
            continue
        run.written += sorted((crs.root / "feedback" / student / assignment).glob("*.html"))
    return run
