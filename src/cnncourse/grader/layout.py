"""The course as the grader sees it: root, nbgrader config (read once per command), gradebook URL, and where
grading keeps its journal, logs and lock (``autograded/.cnncourse-grade/``)."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from cnncourse import course

JOURNAL_DIR = ".cnncourse-grade"  # under autograded/: glob("*") over students skips it


@dataclass(frozen=True)
class Course:
    """One course folder and its nbgrader configuration."""

    root: Path
    config: object  # traitlets Config of nbgrader_config.py
    course_id: str
    db_url: str

    @classmethod
    def load(cls, root: Path, db_url: str | None = None) -> "Course":
        """Read ``<root>/nbgrader_config.py`` once; ``db_url`` overrides the gradebook URL it gives."""
        from traitlets.config.loader import PyFileConfigLoader

        root = Path(root).resolve()
        cfg = PyFileConfigLoader(course.CONFIG_FILE, path=str(root)).load_config()
        section = cfg.CourseDirectory if "CourseDirectory" in cfg else {}
        cid = str(section.get("course_id", "default_course"))
        url = db_url or str(section.get("db_url") or f"sqlite:///{root / 'gradebook.db'}")
        return cls(root, cfg, cid, url)

    def nbgrader_config(self, **sections: dict) -> object:
        """A fresh copy of the course config with ``{"Section": {"trait": value}}`` overrides merged in."""
        from traitlets.config import Config

        cfg = copy.deepcopy(self.config)
        cfg.merge(Config(sections))
        return cfg

    @property
    def sqlite_file(self) -> Path | None:
        """The gradebook's file when it is an SQLite database (``sqlite:///PATH``), else None."""
        prefix = "sqlite:///"
        return Path(self.db_url[len(prefix):]) if self.db_url.startswith(prefix) else None

    def source(self, assignment: str) -> Path:
        return self.root / course.SOURCE_DIR / assignment

    def submitted(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment

    def journal_dir(self, assignment: str) -> Path:
        return self.root / "autograded" / JOURNAL_DIR / assignment

    def students(self, assignment: str) -> list[str]:
        """Students with a ``submitted/<student>/<assignment>/`` folder."""
        sub = self.root / "submitted"
        if not sub.is_dir():
            return []
        return sorted(p.name for p in sub.iterdir() if (p / assignment).is_dir() and not p.name.startswith("."))
