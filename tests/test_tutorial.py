"""docs/tutorial.md runs as written, so the page cannot drift from the code.

The page's fenced blocks are replayed in order in a temporary folder:

- ```sh blocks, line by line.  Only two kinds of line are allowed, so that the
  page holds no command this test does not run: ``hrgraph ARGS`` (run in
  process through click's CliRunner, which saves a Python start and a torch
  import per command) and ``cat > FILE <<'EOF'`` ... ``EOF`` (writes FILE).
  Comments, blank lines and ``\\`` continuations are fine.
- ```output blocks: excerpts of what the sh block just before printed; every
  line except ``...`` must appear in that output (spaces squeezed).  Excerpts
  of the real Fashion-MNIST runs, whose numbers depend on the data, are
  ```text blocks and are not compared.
- ```python blocks, executed in the temporary folder.

The only substitution: ``HRGRAPH_DATA`` points at a folder holding a tiny
Fashion-MNIST in the real idx format (300 training and 100 test images of
28x28), which hrgraph reads before Debian's copy; the page's limits
(``--limit-train``, ``limit_train``) then cap nothing and every step is fast.
"""

from __future__ import annotations

import gzip
import re
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from hrgraph.cli.main import main

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
_FENCE = re.compile(r"^```([A-Za-z]*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)
_HEREDOC = re.compile(r"^cat > (\S+) <<'?(\w+)'?$")

#: Files the page says its steps write, relative to the folder it runs in.
EXPECTED_FILES = [
    "ventral.yaml", "fashion.yaml", "ventral.svg", "ventral-no-bypass.yaml", "ventral-no-bypass-matched.yaml",
    "runs/ventral/config.yaml", "runs/ventral/metrics.csv", "runs/ventral/summary.json", "runs/ventral/curves.png",
    "runs/ventral/checkpoints/best.pt", "runs/ventral/checkpoints/last.pt",
    "runs/ventral/analysis/analysis.md", "grid.yaml", "report.md",
    "runs/afternoon/ventral__fashion-mnist__s0/summary.json",
    "runs/afternoon/ventral-no-bypass__fashion-mnist__s1/summary.json",
]


def tutorial_blocks(text: str) -> list[tuple[str, str]]:
    """The fenced blocks of ``text`` in order, as (language, body)."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(text)]


def write_tiny_fashion_mnist(folder: Path, n_train: int = 300, n_test: int = 100) -> None:
    """Fashion-MNIST's four idx files (gzipped, as Debian ships them), with a learnable class pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 160, size=(n, 28, 28), dtype=np.uint8)
        for i, y in enumerate(labels):  # class y brightens rows 2y..2y+4 in the noise: learnable, not at once
            images[i, 2 * y : 2 * y + 5, 4:24] += 60
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 0x801, n) + labels.tobytes())


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def run_sh(block: str, runner: CliRunner, folder: Path) -> str:
    """Run one ```sh block as the page means it; return everything the hrgraph commands printed."""
    lines = block.replace("\\\n", " ").splitlines()
    printed = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        heredoc = _HEREDOC.match(line)
        if heredoc:
            end = lines.index(heredoc.group(2), i)
            (folder / heredoc.group(1)).write_text("\n".join(lines[i:end]) + "\n")
            i = end + 1
            continue
        words = shlex.split(line, comments=True)
        assert words[0] == "hrgraph", f"docs/tutorial.md: the test cannot run this line: {line!r}"
        result = runner.invoke(main, words[1:], catch_exceptions=False)
        assert result.exit_code == 0, f"`{line}` exited {result.exit_code}:\n{result.output}"
        printed.append(result.output)
    return "\n".join(printed)


@pytest.mark.slow
def test_tutorial_runs_as_written(tmp_path, monkeypatch):
    write_tiny_fashion_mnist(tmp_path / "data" / "fashion-mnist")
    monkeypatch.setenv("HRGRAPH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables as wide as the page's excerpts
    monkeypatch.chdir(tmp_path)
    blocks = tutorial_blocks(TUTORIAL.read_text())
    assert [lang for lang, _ in blocks].count("sh") >= 9 and any(lang == "python" for lang, _ in blocks)
    threads = torch.get_num_threads()  # --threads 1 pins this process's torch; give the other tests theirs back
    runner = CliRunner()
    printed, everything = None, []
    try:
        for lang, body in blocks:
            if lang == "sh":
                printed = run_sh(body, runner, tmp_path)
                everything.append(printed)
            elif lang == "output":
                assert printed is not None, "an output block must follow a sh block"
                for line in body.splitlines():
                    if line.strip() and line.strip() != "...":
                        assert _squeeze(line) in _squeeze(printed), f"not in the output: {line!r}\n{printed}"
            elif lang == "python":
                exec(compile(body, str(TUTORIAL), "exec"), {"__name__": "__tutorial__"})
    finally:
        torch.set_num_threads(threads)
    missing = [f for f in EXPECTED_FILES if not (tmp_path / f).is_file()]
    assert not missing, f"the tutorial's steps did not write {missing}"
    # The runs read the tiny set, not Debian's 70,000 images (which would be slow, not wrong).
    assert f"100 test images (1x28x28) from {tmp_path / 'data' / 'fashion-mnist'}" in _squeeze("\n".join(everything))


def test_blocks_are_found_in_order():
    text = "a\n```sh\nhrgraph validate x.yaml\n```\nb\n```output\nok x\n```\n```python\nprint(1)\n```\n"
    assert tutorial_blocks(text) == [("sh", "hrgraph validate x.yaml\n"), ("output", "ok x\n"),
                                     ("python", "print(1)\n")]


def test_a_line_the_test_cannot_run_fails(tmp_path):
    with pytest.raises(AssertionError, match="cannot run this line"):
        run_sh("rm -rf runs\n", CliRunner(), tmp_path)


def test_heredoc_writes_the_file(tmp_path):
    run_sh("cat > a.yaml <<'EOF'\nname: a\nx: 1\nEOF\n", CliRunner(), tmp_path)
    assert (tmp_path / "a.yaml").read_text() == "name: a\nx: 1\n"
