"""What a grading worker process changes in nbgrader's libraries for speed (``gradebook.one_engine_per_database``,
``worker.check_schemas_once``) leaves every result and every error as it was."""
from __future__ import annotations

import copy
import warnings

import jsonschema
import nbformat
import nbgrader.api
import pytest
from nbgrader.api import Gradebook
from nbgrader.preprocessors import CheckCellMetadata

from cnncourse import course
from cnncourse.grader import gradebook, worker

SOURCE = course.find_root() / "solutions" / "conv_arithmetic" / "conv_arithmetic.ipynb"


@pytest.fixture
def restored(monkeypatch):
    """Whatever the test patches process-wide is put back afterwards."""
    monkeypatch.setattr(jsonschema, "validate", jsonschema.validate)
    monkeypatch.setattr(nbgrader.api, "create_engine", nbgrader.api.create_engine)


def _errors(nb) -> list[str]:
    out = []
    for cell in nb.cells:
        try:
            CheckCellMetadata().preprocess(nbformat.v4.new_notebook(cells=[cell]), {})
            out.append("")
        except Exception as exc:  # the message nbgrader logs for the cell
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def test_schemas_checked_once_same_verdicts_and_messages(restored, monkeypatch):
    nb = nbformat.read(SOURCE, as_version=4)
    broken = copy.deepcopy(nb)
    graded = [c for c in broken.cells if c.metadata.get("nbgrader", {}).get("grade")]
    graded[0].metadata.nbgrader["points"] = "three"  # wrong type
    graded[1].metadata.nbgrader["grade_id"] = 42
    del graded[2].metadata.nbgrader["locked"]  # a required key
    stock = _errors(nb), _errors(broken)
    assert not any(stock[0]) and sum(map(bool, stock[1])) == 3

    worker.check_schemas_once()
    checks = []
    real = jsonschema.Draft4Validator.check_schema.__func__
    monkeypatch.setattr(jsonschema.Draft4Validator, "check_schema",
                        classmethod(lambda cls, schema, **kw: (checks.append(1), real(cls, schema, **kw))[1]))
    assert (_errors(nb), _errors(broken)) == stock
    assert len(checks) == 1, "nbgrader's schema is checked once per process"
    with pytest.raises(jsonschema.SchemaError):  # a broken schema is still refused
        jsonschema.validate({}, {"type": "no-such-type"})


def test_gradebooks_on_one_database_share_an_engine(restored, tmp_path):
    gradebook.one_engine_per_database()
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Gradebook(url, "course") as first:
            first.add_student("ada")
            engine = first.engine
        with Gradebook(url, "course") as second:  # after close(): same engine, new connections, same data
            assert second.engine is engine
            assert [s.id for s in second.students] == ["ada"]
            with Gradebook(url, "course") as third:  # two open at once
                third.add_student("grace")
            assert sorted(s.id for s in second.students) == ["ada", "grace"]
        with Gradebook(f"sqlite:///{tmp_path / 'b.db'}", "course") as other:
            assert other.engine is not engine and other.students == []


def test_a_new_class_gradebook_is_stamped_without_the_alembic_command(tmp_path, monkeypatch):
    """``cnncourse grade`` on a class without a gradebook yet: the version stamp comes from nbgrader's migration
    scripts in-process, not from ``alembic heads`` (a subprocess; here not even on PATH)."""
    from sqlalchemy import create_engine, text
    from traitlets.config import Config

    from cnncourse.grader.layout import Course

    monkeypatch.setattr(nbgrader.api, "get_alembic_version", nbgrader.api.get_alembic_version)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    crs = Course(tmp_path, Config(), "course", f"sqlite:///{tmp_path / 'gradebook.db'}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gradebook.ensure_schema(crs)
    engine = create_engine(crs.db_url)
    with engine.connect() as conn:
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    assert stamped == nbgrader.api.get_alembic_version() and getattr(nbgrader.api.get_alembic_version,
                                                                       "_cnncourse", False)


def test_a_merge_is_written_again_over_a_concurrent_graders_rows(tmp_path, monkeypatch):
    """Two graders sharing a class gradebook (PostgreSQL on a hub) may both add a student they each found
    missing: the one refused by the unique key writes its transaction again over the other's, as a regrade
    would; the student ends with one submission. The other grader is simulated by a second connection that adds
    the student between our lookup and our insert."""
    import shutil

    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from cnncourse.grader.layout import Course

    root = tmp_path / "course"
    (root / course.SOURCE_DIR).mkdir(parents=True)
    shutil.copy2(course.find_root() / course.CONFIG_FILE, root / course.CONFIG_FILE)
    shutil.copytree(SOURCE.parent, root / course.SOURCE_DIR / "conv_arithmetic")
    crs = Course.load(root)
    work = tmp_path / "work"
    work.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gradebook.prepare(crs, "conv_arithmetic", work)  # a new SQLite class gradebook: the template's copy
    other = create_engine(crs.db_url)
    real_get, raced = Session.get, []

    def get_then_race(self, entity, ident, *args, **kwargs):
        found = real_get(self, entity, ident, *args, **kwargs)
        if entity is nbgrader.api.Student and found is None and not raced:
            raced.append(ident)
            with other.begin() as conn:
                conn.execute(text("INSERT INTO student (id) VALUES (:id)"), {"id": ident})
        return found

    monkeypatch.setattr(Session, "get", get_then_race)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gradebook.merge(crs, "conv_arithmetic", "ada", {}, None)
    assert raced == ["ada"], "the race was not staged"
    with other.connect() as conn:
        students = conn.execute(text("SELECT id FROM student")).scalars().all()
        submissions = conn.execute(text("SELECT count(*) FROM submitted_assignment WHERE student_id = 'ada'"))
        assert students == ["ada"] and submissions.scalar_one() == 1
    other.dispose()
