"""The documentation cannot rot: README.md and docs/*.md are run and their links followed.

- Every ```python block runs, in a fresh process, in a temporary directory holding
  examples/synthetic_sky.png (as the repository root does), with the repository on sys.path. A
  block may be left out only by the line `<!-- not-run: REASON -->` right before it (for code that
  needs a GPU, a cluster or an external program). A block that imports a missing optional extra
  (astropy, dask, ...; or stops with srcnn_np's `pip install "srcnn_np[EXTRA]"` hint) skips, naming it.
- In a ```bash block preceded by `<!-- runnable -->`, every `python -m srcnn_np ...` command
  (also one `&&`-joined segment of a longer line) runs, in order, in such a directory; it must
  exit 0. Other commands of the block (pip, pytest) are not run.
- Every relative link and image of these files must name a file of the tree, and a `#fragment` a
  heading of the page it points to (GitHub's anchors).
- README.md stays a landing page (<= 250 lines), and `.ci/run` takes its test command from it.
"""
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLE = ROOT / "examples" / "synthetic_sky.png"
README_MAX_LINES = 250
CI_MARKER = "(CI runs exactly this line)"
RUNNABLE = "<!-- runnable -->"
NOT_RUN = re.compile(r"<!-- not-run: (\S.*?) -->")
# Optional extras a block may need: a block importing a missing one skips (the runtime needs none).
OPTIONAL_MODULES = {"astropy", "dask", "distributed", "zarr", "tifffile", "xisf", "photutils", "scipy",
                    "skimage", "torch", "numba_cuda", "matplotlib"}
BLOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    marker: str  # the non-blank line before the fence ("" if none)
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """The page's ``` code blocks with the line before each."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = re.match(r"^(\s*)```\s*([\w-]*)", lines[i])
        if not opening:
            i += 1
            continue
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```")), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: code block never closed"
        blocks.append(Block(page, i + 1, opening.group(2), before, "\n".join(lines[i + 1:end]) + "\n"))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for page in PAGES for b in fenced_blocks(page)]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "python"]
RUNNABLE_BLOCKS = [b for b in ALL_BLOCKS if b.marker == RUNNABLE]


def workdir(tmp_path: Path) -> Path:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / EXAMPLE.name).write_bytes(EXAMPLE.read_bytes())
    return tmp_path


def environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return env


def test_the_docs_have_code_to_check():
    """The collection below is not empty by accident (a changed fence or marker would make the
    other tests pass vacuously)."""
    readme = [b for b in PYTHON_BLOCKS if b.page.name == "README.md" and b.page.parent == ROOT]
    assert readme, "README.md has no ```python block"
    assert any(b.page.parent == ROOT for b in RUNNABLE_BLOCKS), f"README.md has no {RUNNABLE} block"
    assert len(PAGES) >= 5, [str(p) for p in PAGES]


def test_markers_are_used_as_documented():
    """A `<!-- not-run -->` says why and sits before a python block; `<!-- runnable -->` sits before
    a bash block that holds a `python -m srcnn_np` command."""
    wrong = []
    for b in ALL_BLOCKS:
        if "not-run" in b.marker and (b.lang != "python" or not NOT_RUN.fullmatch(b.marker)):
            wrong.append(f"{b.where}: {b.marker!r} before a {b.lang or 'plain'} block")
        if b.marker == RUNNABLE and (b.lang != "bash" or not srcnn_np_commands(b)):
            wrong.append(f"{b.where}: {RUNNABLE} before a {b.lang or 'plain'} block without python -m srcnn_np")
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            marker = line.strip()
            if marker.startswith(("<!-- runnable", "<!-- not-run")) and marker != RUNNABLE \
                    and not NOT_RUN.fullmatch(marker):
                wrong.append(f"{page.relative_to(ROOT)}:{n}: malformed marker {marker!r}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.where for b in PYTHON_BLOCKS])
def test_python_block_runs(block: Block, tmp_path):
    reason = NOT_RUN.fullmatch(block.marker)
    if reason:
        pytest.skip(f"{block.where}: not run: {reason.group(1)}")
    script = workdir(tmp_path) / "block.py"
    script.write_text(block.code, encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=environment(), capture_output=True,
                         text=True, timeout=BLOCK_TIMEOUT_S)
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", run.stderr)
    if run.returncode and missing and missing.group(1).split(".")[0] in OPTIONAL_MODULES:
        pytest.skip(f"{block.where}: needs the optional {missing.group(1)}")
    extra = re.search(r'\w+Error: .*pip install "srcnn_np\[(\w+)\]"', run.stderr)  # srcnn_np's hint for a missing extra
    if run.returncode and extra:
        pytest.skip(f"{block.where}: needs the optional extra srcnn_np[{extra.group(1)}]")
    assert run.returncode == 0, f"{block.where}: the python block failed (exit {run.returncode}):\n" \
                                f"{block.code}\n--- stderr ---\n{run.stderr[-4000:]}"


def srcnn_np_commands(block: Block) -> list[str]:
    """The `python -m srcnn_np ...` commands of a bash block: whole lines or `&&`-joined segments."""
    commands = []
    for line in block.code.splitlines():
        for segment in line.split("&&"):
            segment = segment.strip()
            if segment.startswith("python -m srcnn_np"):
                commands.append(segment)
    return commands


@pytest.mark.parametrize("block", RUNNABLE_BLOCKS, ids=[b.where for b in RUNNABLE_BLOCKS])
def test_runnable_commands_run(block: Block, tmp_path):
    cwd = workdir(tmp_path)
    for command in srcnn_np_commands(block):
        argv = shlex.split(command, comments=True)
        run = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=environment(), capture_output=True,
                             text=True, timeout=BLOCK_TIMEOUT_S, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, f"{block.where}: `{command}` exited {run.returncode}:\n{run.stderr[-4000:]}"


def github_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def prose(page: Path) -> str:
    """The page without its code blocks, inline code and HTML comments (links there are not links)."""
    text = page.read_text(encoding="utf-8")
    text = re.sub(r"^\s*```.*?^\s*```[^\n]*$", "", text, flags=re.S | re.M)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    return re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text, flags=re.S)


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    for line in prose(page).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*)", line)
        if heading:
            anchor = github_anchor(heading.group(1))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            if count:
                seen[f"{anchor}-{count}"] = 1
    return set(seen)


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def test_links_resolve():
    """Every relative link (and image) of README.md and docs/*.md names a file of the tree, and its
    #fragment a heading there."""
    broken, checked = [], 0
    for page in PAGES:
        for target in LINK.findall(prose(page)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            checked += 1
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not resolved.exists():
                broken.append(f"{where}: no such file {resolved}")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                broken.append(f"{where}: no heading #{fragment} in {resolved.relative_to(ROOT)} "
                              f"(headings: {', '.join(sorted(anchors(resolved)))})")
    assert checked > 10, f"only {checked} relative links found: is the link pattern broken?"
    assert not broken, "\n".join(broken)


def test_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"


def readme_test_command() -> str:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    marked = [i for i, line in enumerate(lines) if line.rstrip().endswith(CI_MARKER)]
    assert len(marked) == 1, f"README.md: {len(marked)} lines end with {CI_MARKER!r}, expected 1"
    return lines[marked[0] + 1]


def test_ci_runs_the_readme_test_command():
    """.ci/run's extraction (its lines from `test_command=` to `esac`, run on their own with bash)
    yields exactly the README's test command, which installs the test extras and runs pytest."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(ci) if line.startswith("test_command="))
    end = next(i for i in range(start, len(ci)) if ci[i].strip() == "esac")
    extraction = "\n".join(["set -euo pipefail", *ci[start:end + 1], 'printf %s "$test_command"'])
    run = subprocess.run(["bash", "-c", extraction], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    expected = readme_test_command()
    assert run.stdout == expected, f".ci/run extracts {run.stdout!r}, README.md says {expected!r}"
    assert expected.startswith("python -m pip install ") and "python -m pytest" in expected, expected
    assert any(line.strip() == 'eval "$test_command"' or line.startswith('eval "$test_command"') for line in ci), \
        ".ci/run does not run the extracted command"
