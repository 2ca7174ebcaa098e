"""Run the book's chapters in order with papermill and build the HTML book from the executed notebooks.

    python -m egma.book run   --preset ci [--chapters 1,2] [--out _executed] [--param key=value ...]
    python -m egma.book build --preset ci [--out _executed]
    python -m egma.book check --preset ci                # open the built pages in offline Chromium
    python -m egma.book all   --preset ci [...]          # run, build, check: the whole book

Chapters are `notebooks/NN_name.py` (jupytext percent format). Each one is converted to a notebook,
executed with papermill (kernel `python3`, working directory `notebooks/` as in JupyterLab) and
kept as `<out>/<preset>/NN_name.ipynb`. Every chapter gets the same parameters: `preset`, `run_dir`
(where chapters hand results to each other), `data_root` (the dataset the book reads) and any
`--param`. The build puts the executed notebooks where `_toc.yml` lists the chapters
(notebooks/NN_name) in a source tree under book/_build/source and runs Jupyter Book 1 there with
execution off, so the HTML shows exactly the papermill outputs. The check opens the root page and every
chapter page in headless Chromium with the network off (egma.browser_check): no console errors, and every
plotly figure the executed chapter holds is on its page and drawn; it writes screenshots of three chapter
pages to book/_build/html/_screenshots/. `all` records the wall time of each step in book/_build/timings.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

from egma import browser_check
from egma.config import PRESETS

REPO_ROOT = Path(__file__).resolve().parent.parent
KERNEL_NAME = "python3"
CHAPTER_PATTERN = re.compile(r"^(\d{2})_\w+\.py$")
TIMINGS_FILE = "timings.json"
SCREENSHOT_CHAPTERS = (1, 2, 5)  # the pages pictured after a check (others fill in when one is missing)
SCREENSHOT_FOLDER = "_screenshots"
_FIGURE_DIV = re.compile(r'<div id="[^"]*" class="plotly-graph-div"')  # how plotly.io.to_html opens a figure


class ChapterFailed(RuntimeError):
    """A chapter raised while papermill executed it; the executed notebook keeps the traceback."""

    def __init__(self, chapter: Chapter, executed: Path, cause: Exception):
        self.chapter, self.executed = chapter, executed
        super().__init__(f"chapter {chapter.name} failed: {_short_error(cause)}\n"
                         f"  the executed notebook with the error is {executed}")


@dataclass(frozen=True)
class Chapter:
    number: int
    name: str       # file stem, e.g. "01_data"
    source: Path    # the py:percent file


def find_chapters(notebooks_dir: Path = REPO_ROOT / "notebooks") -> list[Chapter]:
    """The chapters `NN_name.py` of a folder, in chapter order."""
    chapters = [Chapter(int(match.group(1)), path.stem, path)
                for path in notebooks_dir.glob("*.py")
                if (match := CHAPTER_PATTERN.match(path.name))]
    numbers = [c.number for c in chapters]
    duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicated:
        raise ValueError(f"{notebooks_dir}: more than one chapter numbered {duplicated}")
    return sorted(chapters, key=lambda c: c.number)


def select_chapters(chapters: list[Chapter], numbers: list[int] | None) -> list[Chapter]:
    """The chapters with the given numbers (all when None), failing on a number that has no chapter."""
    if numbers is None:
        return chapters
    by_number = {c.number: c for c in chapters}
    missing = [n for n in numbers if n not in by_number]
    if missing:
        raise ValueError(f"no chapter numbered {missing}; chapters are {sorted(by_number)}")
    return [by_number[n] for n in sorted(set(numbers))]


def default_parameters(preset: str, root: Path = REPO_ROOT) -> dict[str, object]:
    """The parameters every chapter receives unless overridden (absolute paths: chapters run in notebooks/)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return {"preset": preset,
            "run_dir": str(root / "runs" / preset),
            "data_root": str(root / "data" / "phantom" / preset)}


def parse_param(text: str) -> tuple[str, object]:
    """`key=value` with a YAML value (`n=3` gives 3, `flag=true` gives True, `path=a/b` a string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise ValueError(f"--param wants key=value with a Python name as key, got {text!r}")
    return key, yaml.safe_load(value)


def to_notebook(source: Path) -> nbformat.NotebookNode:
    """The percent-format chapter as a notebook with the kernelspec papermill needs."""
    notebook = jupytext.read(source)
    notebook.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "Python 3 (ipykernel)",
                                       "language": "python"}
    return notebook


def execute_chapter(chapter: Chapter, out_dir: Path, parameters: dict[str, object],
                    progress_bar: bool = False) -> Path:
    """Execute one chapter with papermill into `out_dir/NN_name.ipynb`; raise ChapterFailed on error."""
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{chapter.name}.ipynb"
    _put_repo_on_kernel_path()
    try:
        papermill.execute_notebook(to_notebook(chapter.source), str(executed), parameters=parameters,
                                   kernel_name=KERNEL_NAME, cwd=str(chapter.source.parent),
                                   progress_bar=progress_bar, report_mode=False)
    except Exception as error:  # papermill wraps cell errors; kernel start-up errors come raw
        raise ChapterFailed(chapter, executed, error) from error
    return executed


def run_chapters(chapters: list[Chapter], out_dir: Path, parameters: dict[str, object],
                 progress_bar: bool = False) -> dict[str, float]:
    """Execute the chapters in order, stop at the first failure; returns wall seconds per chapter.

    The timings of every chapter executed so far are written to `out_dir/timings.json`.
    """
    timings_path = out_dir / TIMINGS_FILE
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    this_run: dict[str, float] = {}
    for index, chapter in enumerate(chapters, start=1):
        print(f"[{index}/{len(chapters)}] {chapter.name} ...", flush=True)
        start = time.perf_counter()
        try:
            execute_chapter(chapter, out_dir, parameters, progress_bar)
        except ChapterFailed:
            print(f"[{index}/{len(chapters)}] {chapter.name} FAILED after "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
            raise
        seconds = round(time.perf_counter() - start, 1)
        this_run[chapter.name] = timings[chapter.name] = seconds
        timings_path.write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
        print(f"[{index}/{len(chapters)}] {chapter.name} done in {seconds:.1f} s", flush=True)
    return this_run


BOOK_FILES = ("_config.yml", "book/intro.md", "book/references.bib")  # copied into the build's source tree


def toc_chapters(project_root: Path) -> list[str]:
    """The chapter files `_toc.yml` lists, in order (e.g. "notebooks/01_data"); every chapter
    notebooks/NN_name.py must be among them, or the book would silently leave it out."""
    path = project_root / "_toc.yml"
    listed = [entry["file"] for entry in yaml.safe_load(path.read_text()).get("chapters", [])]
    found = [f"notebooks/{c.name}" for c in find_chapters(project_root / "notebooks")]
    missing, unknown = [f for f in found if f not in listed], [f for f in listed if f not in found]
    if missing or unknown:
        raise ValueError(f"{path} must list every chapter as `- file: notebooks/NN_name`; "
                         f"missing {missing}, not a chapter {unknown}")
    return listed


def stage_book(executed_dir: Path, chapters: list[Chapter], project_root: Path, source_dir: Path) -> Path:
    """A Jupyter Book source tree in `source_dir`: the book files, `_toc.yml` narrowed to `chapters`, and
    each chapter's executed notebook at notebooks/NN_name.ipynb (where the toc points). Refuses missing or
    failed chapters; the user's own notebooks/*.ipynb are never touched."""
    if not chapters:
        raise ValueError("there are no chapters to build")
    executed = [executed_dir / f"{c.name}.ipynb" for c in chapters]
    not_run = [c.name for c, path in zip(chapters, executed) if not path.exists()]
    if not_run:
        raise FileNotFoundError(f"not executed yet in {executed_dir}: {', '.join(not_run)}; "
                                f"run `python -m egma.book run` first")
    failed = [path.name for path in executed
              if nbformat.read(path, as_version=4).metadata.get("papermill", {}).get("exception")]
    if failed:
        raise RuntimeError(f"these executed notebooks in {executed_dir} stopped on an error: "
                           f"{', '.join(failed)}")
    built = {f"notebooks/{c.name}" for c in chapters}
    toc = yaml.safe_load((project_root / "_toc.yml").read_text())
    toc["chapters"] = [{"file": f} for f in toc_chapters(project_root) if f in built]
    if source_dir.exists():
        shutil.rmtree(source_dir)
    (source_dir / "notebooks").mkdir(parents=True)
    for name in BOOK_FILES:
        (source_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(project_root / name, source_dir / name)
    (source_dir / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for path in executed:
        shutil.copy2(path, source_dir / "notebooks" / path.name)
    return source_dir


def build_html(source_dir: Path, output_dir: Path, builder: str = "html") -> Path:
    """Jupyter Book 1 build of `source_dir` (its _config.yml/_toc.yml) into output_dir/_build/<builder>."""
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
               str(source_dir), "--path-output", str(output_dir), "--builder", builder]
    completed = subprocess.run(command, cwd=source_dir)
    if completed.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {completed.returncode}): {' '.join(command)}")
    return output_dir / "_build" / builder


def build_book(executed_dir: Path, chapters: list[Chapter], project_root: Path = REPO_ROOT,
               output_dir: Path | None = None) -> Path:
    """Stage the executed chapters and build the HTML into OUTPUT/_build/html (OUTPUT defaults to the
    project's book/); returns that folder."""
    output_dir = output_dir or project_root / "book"
    source_dir = stage_book(executed_dir, chapters, project_root, output_dir / "_build" / "source")
    start = time.perf_counter()
    html = build_html(source_dir, output_dir)
    print(f"HTML book built in {time.perf_counter() - start:.1f} s: {html / 'index.html'}", flush=True)
    return html


class BookCheckFailed(RuntimeError):
    """A built page failed the browser check; the message lists every problem of every page."""


def chapter_page(html_dir: Path, chapter: Chapter) -> Path:
    return html_dir / "notebooks" / f"{chapter.name}.html"


def plotly_figures(executed: Path) -> int:
    """How many plotly figures an executed notebook's outputs hold (each must be drawn on its page)."""
    notebook = nbformat.read(executed, as_version=4)
    return sum(len(_FIGURE_DIV.findall(output.get("data", {}).get("text/html", "")))
               for cell in notebook.cells for output in cell.get("outputs", []))


def screenshot_chapters(chapters: list[Chapter], count: int = 3) -> list[Chapter]:
    """The chapters to picture: SCREENSHOT_CHAPTERS where built, then the first others, `count` in all."""
    preferred = [c for c in chapters if c.number in SCREENSHOT_CHAPTERS]
    return (preferred + [c for c in chapters if c not in preferred])[:count]


def check_book(html_dir: Path, chapters: list[Chapter], executed_dir: Path, project_root: Path = REPO_ROOT,
               screenshots: bool = True) -> list[browser_check.PageReport]:
    """Open the root page and every chapter page in offline headless Chromium; raise BookCheckFailed
    unless each loads without console errors and draws every plotly figure its executed notebook holds.
    Screenshots of `screenshot_chapters` go to html_dir/_screenshots/NN_name.png."""
    html_dir = html_dir.resolve()  # the reports name pages by resolved path
    pages = {chapter_page(html_dir, c): plotly_figures(executed_dir / f"{c.name}.ipynb") for c in chapters}
    root = html_dir / (yaml.safe_load((project_root / "_toc.yml").read_text())["root"] + ".html")
    shots = {}
    if screenshots:
        shutil.rmtree(html_dir / SCREENSHOT_FOLDER, ignore_errors=True)  # none left from an earlier check
        shots = {chapter_page(html_dir, c): html_dir / SCREENSHOT_FOLDER / f"{c.name}.png"
                 for c in screenshot_chapters(chapters)}
    reports = browser_check.check_pages([root, *pages], shots)
    problems = []
    for report in reports:
        expected = pages.get(report.page, 0)
        if report.loaded and report.figures != expected:
            problems.append(f"{report.page.name}: {expected} plotly figures in the executed notebook, "
                            f"{report.figures} on the page")
        problems += [f"{report.page.name}: {p}" for p in report.problems]
    for report in reports:
        print(report.summary(), flush=True)
    if problems:
        raise BookCheckFailed("the built book failed the browser check:\n  " + "\n  ".join(problems))
    return reports


STEPS = {"run": ("run",), "build": ("build",), "check": ("check",), "all": ("run", "build", "check")}


def make_book(chapters: list[Chapter], executed_dir: Path, parameters: dict[str, object],
              steps: tuple[str, ...] = STEPS["all"], project_root: Path = REPO_ROOT,
              output_dir: Path | None = None) -> dict[str, object]:
    """Run the chapters, build the HTML into OUTPUT/_build/html and check it (the `steps` asked for, in
    that order); returns what was done and the wall seconds of each step. The whole book (every step)
    also records that in OUTPUT/_build/timings.json. OUTPUT defaults to the project's book/."""
    output_dir = output_dir or project_root / "book"
    html_dir = output_dir / "_build" / "html"
    started = time.perf_counter()
    record: dict[str, object] = {"preset": parameters["preset"]}
    if "run" in steps:
        print(f"running {len(chapters)} chapter(s) into {executed_dir} with {parameters}", flush=True)
        timings = run_chapters(chapters, executed_dir, parameters, progress_bar=sys.stderr.isatty())
        print(f"{len(timings)} chapter(s) ran in {sum(timings.values()):.1f} s", flush=True)
        record.update(parameters=parameters, chapters_s=timings)
    if "build" in steps:
        step = time.perf_counter()
        build_book(executed_dir, chapters, project_root, output_dir)
        record["build_s"] = round(time.perf_counter() - step, 1)
    if "check" in steps:
        step = time.perf_counter()
        reports = check_book(html_dir, chapters, executed_dir, project_root)
        record["check_s"] = round(time.perf_counter() - step, 1)
        record["screenshots"] = [str(r.screenshot) for r in reports if r.screenshot]
        print(f"browser check passed on {len(reports)} pages in {record['check_s']} s", flush=True)
    record["total_s"] = round(time.perf_counter() - started, 1)
    if set(steps) == set(STEPS["all"]):
        path = output_dir / "_build" / TIMINGS_FILE
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"the whole book ({record['preset']}) took {record['total_s']} s: chapters "
              f"{sum(record['chapters_s'].values()):.1f} s, build {record['build_s']} s, check "
              f"{record['check_s']} s; recorded in {path}", flush=True)
    return record


def _put_repo_on_kernel_path() -> None:
    """Kernels inherit this process's environment; chapters run in notebooks/ and import egma."""
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def _short_error(error: Exception) -> str:
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename:  # papermill's PapermillExecutionError
        return f"{ename}: {evalue} (cell {getattr(error, 'exec_count', '?')})"
    return f"{type(error).__name__}: {error}"


def _param_argument(text: str) -> tuple[str, object]:
    try:
        return parse_param(text)
    except ValueError as error:  # argparse shows an ArgumentTypeError's own message
        raise argparse.ArgumentTypeError(str(error)) from error


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m egma.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=list(STEPS))
    parser.add_argument("--preset", default="ci", choices=sorted(PRESETS))
    parser.add_argument("--chapters", type=lambda s: [int(n) for n in s.split(",")],
                        help="comma-separated chapter numbers to run, build and/or check, e.g. 1,2 (default: all)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "_executed",
                        help="executed notebooks go to OUT/PRESET/ (default: _executed)")
    parser.add_argument("--param", action="append", default=[], type=_param_argument, metavar="KEY=VALUE",
                        help="a parameter for every chapter (repeatable); overrides run_dir, data_root, ...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    executed_dir = args.out.resolve() / args.preset
    try:
        chapters = select_chapters(find_chapters(), args.chapters)
        if not chapters:
            raise ValueError(f"no chapter notebooks/NN_name.py in {REPO_ROOT / 'notebooks'}")
        parameters = {**default_parameters(args.preset), **dict(args.param)}
        make_book(chapters, executed_dir, parameters, STEPS[args.command])
    except (ChapterFailed, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"egma.book: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
