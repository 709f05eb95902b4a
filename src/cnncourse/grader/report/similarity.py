"""Similar submissions: a signal for an instructor to review by hand, never an accusation.

Each graded function a student wrote (the functions defined in the notebook's solution cells) is parsed and
normalised: comments vanish with parsing, docstrings are dropped, every name a student chooses (variables,
arguments) becomes the same token, and statements that are the starter code of that function (the released
cell, i.e. the source cell with its ``### BEGIN/END SOLUTION`` regions removed) are ignored. The normalised
tree is a token sequence; a submission is the set of its k-grams of tokens (per function).

Code many students share is not evidence (the reference-like answer, idioms the lecture showed): a k-gram
found in more than ``max(common_min, common_share * class size)`` submissions is ignored, as MOSS ignores
common code. Two submissions are *similar* when the Jaccard index of their remaining k-grams is at least
``threshold`` (default 0.8) and they share at least ``min_shared`` of them (so a matching one-line slip is not
a match). Similar pairs are joined into clusters. Renaming variables, rewording comments or docstrings does
not hide a copy; honest students solving the exercise the usual way are not flagged. Review every pair
yourself: identical code can have innocent causes (worked together as allowed, the same tutor, a published
hint).
"""
from __future__ import annotations

import ast
import functools
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations

_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION.*?^[ \t]*### END SOLUTION[^\n]*\n?", re.M | re.S)


@dataclass(frozen=True)
class Settings:
    """The knobs of the similarity check (``cnncourse report --similarity THRESHOLD`` sets ``threshold``)."""

    threshold: float = 0.8
    min_shared: int = 12
    k: int = 5
    common_share: float = 0.1
    common_min: int = 3

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"similarity threshold must be in (0, 1], got {self.threshold}: e.g. 0.8")


@dataclass
class Pair:
    """Two similar submissions: score (Jaccard index of their uncommon k-grams), how many they share, and
    the functions that share uncommon code (``{function: (source of a, source of b)}``)."""

    a: str
    b: str
    score: float
    shared: int
    names: list[str] = field(default_factory=list)  # the functions that share uncommon fragments
    functions: dict[str, tuple[str, str]] = field(default_factory=dict)


def starter_code(source: str) -> str:
    """The released version of a solution cell: solution regions replaced as nbgrader does."""
    return _SOLUTION.sub(lambda m: f"{m.group(1)}raise NotImplementedError()\n", source)


def _parse(source: str) -> ast.Module | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]  # magics
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


def _body(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.stmt]:
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    return body


@functools.lru_cache(maxsize=4096)  # the code of a similar pair is shown after its fingerprint was taken
def functions(source: str) -> dict[str, tuple[list[ast.stmt], str]]:
    """``{qualified name: (body statements without docstring, source text)}`` of the functions defined in a
    cell (methods as ``Class.method``); an unparsable cell has none. (Cached: do not change the result.)"""
    tree = _parse(source)
    out: dict[str, tuple[list[ast.stmt], str]] = {}
    if tree is None:
        return out

    def visit(nodes, prefix=""):
        for node in nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[prefix + node.name] = (_body(node), "\n".join(lines[node.lineno - 1:node.end_lineno]))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")

    lines = source.splitlines()
    visit(tree.body)
    return out


def tokens(node: ast.AST) -> list[str]:
    """The normalised token sequence of a tree (pre-order): node types; names and arguments as one token;
    attribute names and number/bool constants kept (they are the API and the arithmetic); strings as one
    token; docstrings of nested functions dropped."""
    out: list[str] = []

    def walk(n: ast.AST) -> None:
        if isinstance(n, (ast.expr_context,)):
            return
        if isinstance(n, ast.Name):
            out.append("N")
            return
        if isinstance(n, ast.arg):
            out.append("arg")
            return
        if isinstance(n, ast.Constant):
            v = n.value
            out.append(f"C{v!r}" if isinstance(v, (int, float, bool, type(None))) else f"C:{type(v).__name__}")
            return
        out.append(type(n).__name__ + (f".{n.attr}" if isinstance(n, ast.Attribute) else ""))
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for stmt in [n.args, *_body(n)]:
                walk(stmt)
            return
        for child in ast.iter_child_nodes(n):
            walk(child)

    walk(node)
    return out


def starter_statements(starters: dict[str, str]) -> dict[str, set[tuple[str, ...]]]:
    """``{grade_id/function: its body statements as token tuples}`` of the released cells
    (``{grade_id: source}``)."""
    return {f"{g}/{name}": {tuple(tokens(s)) for s in body} for g, src in starters.items()
            for name, (body, _) in functions(src).items()}


def fingerprint(cells: dict[str, str], starters: dict[str, set[tuple[str, ...]]], k: int) -> dict[str, set[int]]:
    """``{function: set of k-gram hashes}`` of a student's solution cells (``{grade_id: source}``), without
    the statements that are (after normalising) the starter code's (``starters`` from
    :func:`starter_statements`)."""
    out: dict[str, set[int]] = {}
    for grade_id, source in cells.items():
        for name, (body, _) in functions(source).items():
            given = starters.get(f"{grade_id}/{name}", set())
            toks = [t for s in body for st in [tuple(tokens(s))] if st not in given for t in st]
            out[f"{grade_id}/{name}"] = {hash(tuple(toks[i:i + k])) for i in range(len(toks) - k + 1)}
    return out


def similar_pairs(prints: dict[str, dict[str, set[int]]], settings: Settings = Settings()) -> list[Pair]:
    """Pairs of students whose uncommon k-grams overlap enough (see the module docstring), best first."""
    whole = {s: set().union(*fp.values()) if fp else set() for s, fp in prints.items()}
    df = Counter(g for grams in whole.values() for g in grams)
    limit = max(settings.common_min, math.ceil(settings.common_share * len(prints)))
    rare = {s: {g for g in grams if df[g] <= limit} for s, grams in whole.items()}
    holders: dict[int, list[str]] = defaultdict(list)
    for s in sorted(rare):
        for g in rare[s]:
            holders[g].append(s)
    shared: Counter = Counter()
    for students in holders.values():
        if len(students) > 1:
            shared.update(combinations(students, 2))
    pairs = []
    for (a, b), n in shared.items():
        score = n / (len(rare[a]) + len(rare[b]) - n)
        if n >= settings.min_shared and score >= settings.threshold:
            names = [f for f in prints[a] if prints[a][f] & prints[b].get(f, set()) & rare[a]]
            pairs.append(Pair(a, b, score, n, names))
    return sorted(pairs, key=lambda p: (-p.score, p.a, p.b))


def clusters(pairs: list[Pair]) -> list[list[str]]:
    """Groups of students joined by similar pairs (connected components), largest first."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        parent[find(p.a)] = find(p.b)
    groups: dict[str, list[str]] = defaultdict(list)
    for x in parent:
        groups[find(x)].append(x)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g))


def side_by_side(pair: Pair, cells: dict[str, dict[str, str]]) -> dict[str, tuple[str, str]]:
    """The functions that made the pair similar, as ``{function: (source of a, source of b)}``."""
    fa = {f"{g}/{n}": src for g, s in cells.get(pair.a, {}).items() for n, (_, src) in functions(s).items()}
    fb = {f"{g}/{n}": src for g, s in cells.get(pair.b, {}).items() for n, (_, src) in functions(s).items()}
    return {name: (fa[name], fb[name]) for name in pair.names if name in fa and name in fb}
