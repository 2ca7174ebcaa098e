"""egma.book: every chapter of the book runs under papermill, and the run/build machinery works.

The chapter tests execute the real chapters on the `ci` preset (so no notebook can rot); the other
tests drive egma.book on tiny throwaway chapters in a temporary project.
"""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest
import yaml

from egma import book
from egma.config import get_preset
from egma.phantom.generate import ensure_phantom

CHAPTERS = book.find_chapters()


# --- the book's own chapters -------------------------------------------------------------------

def test_chapters_are_numbered_from_one_without_gaps():
    assert CHAPTERS, "the book has no chapter notebooks/NN_name.py"
    assert [c.number for c in CHAPTERS] == list(range(1, len(CHAPTERS) + 1))


def test_the_table_of_contents_lists_every_chapter_in_order():
    assert book.toc_chapters(book.REPO_ROOT) == [f"notebooks/{c.name}" for c in CHAPTERS]


CI_DATA = book.REPO_ROOT / "data" / "phantom" / "ci"  # the repo's deterministic ci phantom, shared with test_train


class _BookRun:
    """One `ci` run of the book into a temporary run_dir, shared by the per-chapter tests; the data is the
    repository's ci phantom (generated once if missing, checked against the preset if present).

    A chapter reads what earlier chapters left in run_dir, so asking for chapter N first runs
    every earlier chapter not run yet; a failure there names the chapter that broke, once.
    """

    def __init__(self, root: Path):
        self.out_dir = root / "_executed" / "ci"
        self.parameters = {**book.default_parameters("ci", root), "data_root": str(CI_DATA)}
        self.done: set[str] = set()
        self.failed: dict[str, book.ChapterFailed] = {}

    def through(self, chapter: book.Chapter) -> Path:
        ensure_phantom(CI_DATA, get_preset("ci").phantom, workers=2)
        for earlier in CHAPTERS[:CHAPTERS.index(chapter) + 1]:
            if earlier.name in self.failed:
                raise RuntimeError(f"{earlier.name} failed earlier in this run") from self.failed[earlier.name]
            if earlier.name not in self.done:
                try:
                    book.run_chapters([earlier], self.out_dir, self.parameters)
                except book.ChapterFailed as error:
                    self.failed[earlier.name] = error
                    raise
                self.done.add(earlier.name)
        return self.out_dir / f"{chapter.name}.ipynb"


@pytest.fixture(scope="session")
def book_run(tmp_path_factory) -> _BookRun:
    return _BookRun(tmp_path_factory.mktemp("book_run"))


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.name for c in CHAPTERS])
def test_chapter_runs_on_the_ci_preset(chapter, book_run):
    executed = nbformat.read(book_run.through(chapter), as_version=4)
    assert not executed.metadata.papermill.exception  # papermill leaves None on success
    assert executed.metadata.papermill.parameters["preset"] == "ci"
    errors = [o for cell in executed.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_the_whole_book_builds_and_every_page_loads_offline_with_its_figures_drawn(book_run, tmp_path_factory):
    """The HTML of every executed chapter, opened in headless Chromium with the network off."""
    book_run.through(CHAPTERS[-1])
    html = book.build_book(book_run.out_dir, CHAPTERS, output_dir=tmp_path_factory.mktemp("whole_book"))
    reports = book.check_book(html, CHAPTERS, book_run.out_dir)  # raises BookCheckFailed, listing problems
    by_page = {r.page: r for r in reports}
    assert (html / "book" / "intro.html").resolve() in by_page
    for chapter in CHAPTERS:
        report = by_page[book.chapter_page(html, chapter).resolve()]
        expected = book.plotly_figures(book_run.out_dir / f"{chapter.name}.ipynb")
        assert report.problems == [] and report.figures == report.figures_drawn == expected, report.summary()
    assert sum(r.figures_drawn for r in reports) > 0
    shots = sorted((html / book.SCREENSHOT_FOLDER).glob("*.png"))
    assert [s.stem for s in shots] == sorted(c.name for c in book.screenshot_chapters(CHAPTERS))
    assert all(s.stat().st_size > 20_000 for s in shots)  # rendered pages, not blank ones
    print("screenshots of the built book:", *shots, sep="\n  ")


# --- egma.book on throwaway chapters -----------------------------------------------------------


FIRST_CHAPTER = '''
# %% [markdown]
# # A tiny chapter
# It cites {cite:p}`ma2024egma` and shows $s = e^t$.

# %% tags=["parameters"]
preset = "paper"
run_dir = "nowhere"
answer = 0

# %%
from pathlib import Path
from egma.viz import setup_plotly
setup_plotly()
Path(run_dir).mkdir(parents=True, exist_ok=True)
(Path(run_dir) / "handoff.json").write_text(f'{{"preset": "{preset}", "answer": {answer}}}')

# %%
import plotly.graph_objects as go
go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1], name="tiny-trace-{marker}"))
'''

SECOND_CHAPTER = '''
# %% [markdown]
# # The chapter after it

# %% tags=["parameters"]
run_dir = "nowhere"

# %%
import json
from pathlib import Path
handoff = json.loads((Path(run_dir) / "handoff.json").read_text())
assert handoff["answer"] == 42, handoff
'''

FAILING_CHAPTER = '''
# %%
raise ValueError("this chapter is broken on purpose")
'''


def _project(root: Path, chapters: dict[str, str], toc: list[str] | None = None) -> Path:
    """A temporary book project: the repository's book files, the given chapters and a toc listing
    `toc` (default: every chapter file given)."""
    for name in book.BOOK_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(book.REPO_ROOT / name, root / name)
    (root / "notebooks").mkdir()
    for name, text in chapters.items():
        (root / "notebooks" / name).write_text(textwrap.dedent(text).lstrip())
    listed = toc if toc is not None else [Path(n).stem for n in chapters if book.CHAPTER_PATTERN.match(n)]
    (root / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                   + "".join(f"  - file: notebooks/{name}\n" for name in listed))
    return root


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    """Two tiny chapters made into a whole book (run with --param answer=42, built, checked)."""
    marker = tmp_path_factory.getbasetemp().name  # a trace name no other page can contain
    root = _project(tmp_path_factory.mktemp("tiny_book"),
                    {"01_first.py": FIRST_CHAPTER.replace("{marker}", marker),
                     "02_second.py": SECOND_CHAPTER, "notes.py": "# not a chapter\n"})
    chapters = book.find_chapters(root / "notebooks")
    parameters = {**book.default_parameters("ci", root), "answer": 42}
    executed_dir = root / "_executed" / "ci"
    record = book.make_book(chapters, executed_dir, parameters, project_root=root)
    return {"root": root, "chapters": chapters, "record": record, "html": root / "book" / "_build" / "html",
            "marker": marker, "executed_dir": executed_dir}


def test_run_executes_chapters_in_order_with_the_parameters(tiny_book):
    root, executed_dir = tiny_book["root"], tiny_book["executed_dir"]
    assert [c.name for c in tiny_book["chapters"]] == ["01_first", "02_second"]
    assert sorted(p.name for p in executed_dir.glob("*.ipynb")) == ["01_first.ipynb", "02_second.ipynb"]
    handoff = json.loads((root / "runs" / "ci" / "handoff.json").read_text())
    assert handoff == {"preset": "ci", "answer": 42}  # the injected values, not the cell's defaults
    first = nbformat.read(executed_dir / "01_first.ipynb", as_version=4)
    assert first.metadata.kernelspec.name == book.KERNEL_NAME
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in first.cells)
    recorded = json.loads((executed_dir / book.TIMINGS_FILE).read_text())
    assert recorded == tiny_book["record"]["chapters_s"] and all(t > 0 for t in recorded.values())


def test_the_whole_book_records_its_steps_and_their_wall_times(tiny_book):
    record = tiny_book["record"]
    assert json.loads((tiny_book["root"] / "book" / "_build" / book.TIMINGS_FILE).read_text()) == record
    assert record["preset"] == "ci" and record["parameters"]["answer"] == 42
    assert list(record["chapters_s"]) == ["01_first", "02_second"]
    steps = sum(record["chapters_s"].values()) + record["build_s"] + record["check_s"]
    # each figure is rounded to 0.1 s, so the rounded parts may exceed the rounded total by 0.05 s apiece
    assert min(record["build_s"], record["check_s"]) > 0 and steps - 0.25 <= record["total_s"] <= steps + 1
    assert [Path(s).name for s in record["screenshots"]] == ["01_first.png", "02_second.png"]


def test_build_writes_html_with_the_plotly_figure_and_no_network_scripts(tiny_book):
    html_dir = tiny_book["html"]
    page = (html_dir / "notebooks" / "01_first.html").read_text()
    assert 'class="plotly-graph-div"' in page
    assert f"tiny-trace-{tiny_book['marker']}" in page
    assert "window.Plotly = Plotly" in page and "plotly.js v" in page  # the library, inline
    assert page.count("window.Plotly = Plotly") == 1  # once per page, not per figure
    script_sources = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", page)
    assert script_sources and not [s for s in script_sources if re.match(r"(https?:)?//", s)]
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").exists()
    intro = (html_dir / "book" / "intro.html").read_text()
    assert "01_first.html" in intro and "02_second.html" in intro  # both chapters in the toc
    assert "Eye-gaze Guided Multi-modal Alignment" in intro  # the bibliography resolved


def test_the_check_catches_a_figure_missing_from_its_page(tiny_book, tmp_path):
    root, html, executed_dir, chapters = (tiny_book[k] for k in ("root", "html", "executed_dir", "chapters"))
    assert book.plotly_figures(executed_dir / "01_first.ipynb") == 1
    broken = tmp_path / "html"
    shutil.copytree(html, broken)
    page = broken / "notebooks" / "01_first.html"
    page.write_text(re.sub(r'<div id="[^"]*" class="plotly-graph-div"[^>]*></div>', "", page.read_text()))
    with pytest.raises(book.BookCheckFailed, match="01_first.html: 1 plotly figures in the executed notebook, 0 on"):
        book.check_book(broken, chapters, executed_dir, project_root=root, screenshots=False)


def test_screenshots_prefer_chapters_1_2_and_5_then_the_first_others():
    chapters = [book.Chapter(n, f"{n:02d}_x", Path(f"{n:02d}_x.py")) for n in (1, 3, 4, 5, 6)]
    assert [c.number for c in book.screenshot_chapters(chapters)] == [1, 5, 3]
    assert book.screenshot_chapters(chapters[:1]) == chapters[:1]


def test_a_failing_chapter_stops_the_run_and_names_itself(tmp_path, capsys):
    root = _project(tmp_path, {"01_broken.py": FAILING_CHAPTER, "02_second.py": SECOND_CHAPTER})
    chapters = book.find_chapters(root / "notebooks")
    executed_dir = root / "_executed" / "ci"
    with pytest.raises(book.ChapterFailed, match=r"01_broken.*ValueError: this chapter is broken"):
        book.run_chapters(chapters, executed_dir, book.default_parameters("ci", root))
    assert "01_broken FAILED" in capsys.readouterr().out
    assert not (executed_dir / "02_second.ipynb").exists()
    with pytest.raises(RuntimeError, match="01_broken.ipynb"):  # a failed run is never published
        book.stage_book(executed_dir, chapters[:1], root, tmp_path / "source")
    with pytest.raises(FileNotFoundError, match="02_second"):
        book.stage_book(executed_dir, chapters[1:], root, tmp_path / "source")


def test_a_chapter_left_out_of_the_toc_is_an_error(tmp_path):
    root = _project(tmp_path, {"01_first.py": "# %%\n", "02_second.py": "# %%\n"}, toc=["01_first"])
    with pytest.raises(ValueError, match=r"missing \['notebooks/02_second'\]"):
        book.toc_chapters(root)
    (root / "_toc.yml").write_text("chapters:\n  - file: notebooks/01_first\n  - file: notebooks/02_second\n"
                                   "  - file: notebooks/03_gone\n")
    with pytest.raises(ValueError, match=r"not a chapter \['notebooks/03_gone'\]"):
        book.toc_chapters(root)


def test_a_partial_build_narrows_the_toc_and_leaves_the_users_notebooks_alone(tiny_book, tmp_path):
    root, executed_dir = tiny_book["root"], tiny_book["executed_dir"]
    mine = root / "notebooks" / "01_first.ipynb"
    mine.write_text("my own paired notebook")
    source = book.stage_book(executed_dir, tiny_book["chapters"][:1], root, tmp_path / "source")
    assert yaml.safe_load((source / "_toc.yml").read_text())["chapters"] == [{"file": "notebooks/01_first"}]
    staged = nbformat.read(source / "notebooks" / "01_first.ipynb", as_version=4)
    assert staged.metadata.papermill.parameters["answer"] == 42   # the executed notebook, not the source
    assert mine.read_text() == "my own paired notebook"


def test_chapters_are_found_in_numeric_order_and_selected_by_number(tmp_path):
    for name in ["10_last.py", "02_second.py", "01_first.py", "1_bad.py", "notes.py", "03_x.ipynb"]:
        (tmp_path / name).write_text("# %%\n")
    chapters = book.find_chapters(tmp_path)
    assert [c.name for c in chapters] == ["01_first", "02_second", "10_last"]
    assert [c.name for c in book.select_chapters(chapters, [10, 1])] == ["01_first", "10_last"]
    assert book.select_chapters(chapters, None) == chapters
    with pytest.raises(ValueError, match=r"\[3\]"):
        book.select_chapters(chapters, [1, 3])
    (tmp_path / "01_again.py").write_text("# %%\n")
    with pytest.raises(ValueError, match=r"more than one chapter numbered \[1\]"):
        book.find_chapters(tmp_path)


def test_params_are_typed_like_yaml_and_validated():
    assert book.parse_param("n=3") == ("n", 3)
    assert book.parse_param("rate=0.5") == ("rate", 0.5)
    assert book.parse_param("flag=true") == ("flag", True)
    assert book.parse_param("data_root=/a/b=c") == ("data_root", "/a/b=c")
    for bad in ["novalue", "two words=1", "=1"]:
        with pytest.raises(ValueError, match="key=value"):
            book.parse_param(bad)
    with pytest.raises(ValueError, match="unknown preset"):
        book.default_parameters("huge")
