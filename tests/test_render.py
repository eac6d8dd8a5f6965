"""Diagrams: DOT golden files, every spec to SVG, ablated/disabled edges, missing Graphviz, diff, gallery.

Golden files are rewritten only on request: ``HRGRAPH_UPDATE_GOLDEN=1 python -m pytest tests/test_render.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path

import graphviz
import pytest
from click.testing import CliRunner

from hrgraph import load_spec
from hrgraph.cli.main import main
from hrgraph.edit.diff import diff_specs, edge_text
from hrgraph.errors import GraphError, RenderError
from hrgraph.draw.gallery import write_gallery
from hrgraph.generate import random_dag_spec
from hrgraph.draw.render import ABLATED, ADDED, CHANGED, FEEDBACK, IDENTITY, REMOVED, diff_dot, render, to_dot, write_diagram
from hrgraph.build.shapes import count_params, infer_shapes

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").rglob("*.yaml"))  # specs/examples/ too
GOLDEN = Path(__file__).parent / "golden"
HAS_DOT = shutil.which("dot") is not None


@pytest.fixture(autouse=True)
def _in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # specs name their parents relative to specs/


def svg_texts(path: Path) -> list[str]:
    """Every text element of an SVG, unescaped (what a reader sees)."""
    ns = "{http://www.w3.org/2000/svg}"
    return ["".join(t.itertext()) for t in ET.parse(path).getroot().iter(f"{ns}text")]


def edge_lines(dot: str, src: str, dst: str) -> list[str]:
    """DOT lines drawing the long-range edge src->dst (through its label node, if any), not the main path."""
    mid = f"__edge__{src}__{dst}"
    return [
        line.strip()
        for line in dot.splitlines()
        if line.strip().startswith((f"{src} -> {dst} ", f"{src} -> {mid} ", f"{mid} -> {dst} "))
        and "weight=100" not in line  # main-path edges are the heavy ones
    ]


# -- golden DOT sources ------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "hiresnet18"])
def test_dot_matches_golden_file(name):
    dot = to_dot(f"specs/{name}.yaml")
    golden = GOLDEN / f"{name}.dot"
    if os.environ.get("HRGRAPH_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(dot)
        pytest.skip(f"rewrote {golden}")
    assert golden.exists(), f"{golden} is missing; create it with HRGRAPH_UPDATE_GOLDEN=1"
    assert dot == golden.read_text(), f"DOT of {name} changed; if intended, rerun with HRGRAPH_UPDATE_GOLDEN=1"


def test_dot_is_deterministic_for_a_large_generated_spec():
    spec = random_dag_spec(60, seed=3, merge_concat=0.2)
    assert to_dot(spec) == to_dot(load_spec(spec))


def test_render_imports_no_torch():
    code = (
        "import sys, hrgraph, hrgraph.draw.render, hrgraph.edit.diff, hrgraph.draw.gallery; "
        "hrgraph.render('specs/hiresnet18.yaml', sys.argv[1]); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"hrgraph-notorch-{os.getpid()}.dot"
    try:
        subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True, capture_output=True, timeout=60)
    finally:
        out.unlink(missing_ok=True)


# -- contents ----------------------------------------------------------------


def test_labels_show_block_shape_params_and_projection():
    dot = to_dot("specs/hiresnet18.yaml")
    plan = infer_shapes(load_spec("specs/hiresnet18.yaml"))
    stage2 = next(line for line in dot.splitlines() if line.strip().startswith("stage2 ["))
    assert "<b>stage2</b>" in stage2 and "basic x2/2" in stage2 and "128x16x16" in stage2 and "525.6k params" in stage2
    for (src, dst), projection in plan.projections.items():
        lines = edge_lines(dot, src, dst)
        assert lines, f"{src}->{dst} not drawn"
        label = projection.describe().replace(">", "&gt;")
        assert any(label in line for line in dot.splitlines() if line.strip().startswith(f"__edge__{src}__{dst} ["))
    # The main path is heavy and uncoloured like the long-range edges.
    main = next(line.strip() for line in dot.splitlines() if line.strip().startswith("stage1 -> stage2 ["))
    assert main.startswith('stage1 -> stage2 [color="#374151" penwidth=2.2') and "weight=100" in main


def test_identity_edges_are_marked_and_coloured(tmp_path):
    spec = """
name: ident
input: {channels: 3, height: 8, width: 8}
nodes:
  - {id: stem, kind: conv, channels: 8}
  - {id: a, kind: basic, channels: 8}
  - {id: b, kind: basic, channels: 8}
  - {id: c, kind: basic, channels: 16, stride: 2}
  - {id: head, kind: classifier, classes: 2}
edges:
  - {from: stem, to: b}
  - {from: stem, to: a, projection: identity}
  - {from: a, to: c}
"""
    dot = to_dot(spec)
    assert all(IDENTITY in line for line in edge_lines(dot, "stem", "b"))
    assert "<br/>identity>" in dot
    # An edge to the node right after its source has no rank for a label node: an ordinary edge label.
    (short,) = edge_lines(dot, "stem", "a")
    assert "label=<<b>stem-&gt;a</b><br/>identity>" in short
    assert "long-range edge: identity" in dot  # in the legend only when present
    assert "long-range edge: identity" not in to_dot("specs/hiresnet18.yaml")


def test_rankdir():
    assert "rankdir=LR" in to_dot("specs/hiresnet18.yaml", rankdir="LR")
    with pytest.raises(RenderError, match="rankdir"):
        to_dot("specs/hiresnet18.yaml", rankdir="BT")


def test_ablated_edges_are_dashed_grey():
    dot = to_dot("specs/hiresnet18-only-stem-stage2.yaml", show_ablated="specs/hiresnet18.yaml")
    base = load_spec("specs/hiresnet18.yaml")
    for edge in base.edges:
        lines = edge_lines(dot, *edge.key)
        assert lines
        if edge.key == ("stem", "stage2"):
            assert not any("dashed" in line for line in lines)
        else:
            assert all("dashed" in line and ABLATED in line for line in lines), edge.name
            assert f"(ablated) {edge.from_}-&gt;{edge.to}" in dot
    assert "ablated (in the base spec only)" in dot
    assert "(ablated)" not in to_dot("specs/hiresnet18-only-stem-stage2.yaml")


def test_disabled_edges_are_dashed_and_unknown_ones_refused():
    dot = to_dot("specs/hiresnet18.yaml", disabled=["stem:stage4"])
    assert all("dashed" in line for line in edge_lines(dot, "stem", "stage4"))
    assert not any("dashed" in line for line in edge_lines(dot, "stem", "stage3"))
    assert "(disabled) stem-&gt;stage4" in dot
    with pytest.raises(GraphError, match="did you mean 'stem:stage4'") as info:
        to_dot("specs/hiresnet18.yaml", disabled=["stem:stage5"])
    assert info.value.edge == "stem->stage5"


# -- every spec in specs/ to SVG ---------------------------------------------


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_every_spec_renders_to_svg_with_all_ids_and_projection_labels(path, tmp_path):
    out = render(path, tmp_path / f"{path.stem}.svg")
    texts = svg_texts(out)
    plan = infer_shapes(load_spec(path))
    for node_id in plan.order:
        assert node_id in texts, f"node {node_id} not in the SVG"
    for (src, dst), projection in plan.projections.items():
        # A delayed edge's label starts with its delay ("delay 1, nearest upsample 2 -> ...").
        assert any(edge_text(projection) in t for t in texts), f"label of {src}->{dst} not in the SVG"
        assert f"{src}->{dst}" in texts


# -- large specs stay readable -------------------------------------------------


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_100_node_spec_has_no_overlapping_labels_and_a_bounded_size():
    spec = random_dag_spec(100)
    layout = json.loads(graphviz.Source(to_dot(spec)).pipe(format="json"))
    boxes = []
    for obj in layout["objects"]:
        x, y = map(float, obj["pos"].split(","))
        w, h = float(obj["width"]) * 72, float(obj["height"]) * 72  # inches -> points
        boxes.append((obj["name"], x - w / 2, y - h / 2, x + w / 2, y + h / 2))
    long_range = len(load_spec(spec).edges)
    # Every node and every long-range edge's label is a box of its own.
    assert len(boxes) >= 100 + long_range
    overlaps = [
        (a[0], b[0])
        for a, b in combinations(boxes, 2)
        if a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5 and a[2] < b[4] - 0.5 and b[2] < a[4] - 0.5
    ]
    assert overlaps == []
    x0, y0, x1, y1 = map(float, layout["bb"].split(","))
    # Compact two-line nodes: the column grows by well under an inch per node,
    # and the width stays that of a few labels side by side.
    assert (y1 - y0) / 72 < 100 * 1.0
    assert (x1 - x0) / 72 < 40


# -- output files and missing Graphviz ---------------------------------------


def test_dot_output_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    out = render("specs/hiresnet18.yaml", tmp_path / "h.dot")
    assert out.read_text() == to_dot("specs/hiresnet18.yaml")


@pytest.mark.parametrize("suffix", ["svg", "png", "pdf"])
def test_missing_dot_says_how_to_install_and_writes_nothing(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / f"h.{suffix}"
    with pytest.raises(RenderError, match="apt-get install graphviz") as info:
        render("specs/hiresnet18.yaml", out)
    assert "brew install graphviz" in str(info.value) and "conda-forge" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_graphviz_failing_midway_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    out = tmp_path / "h.svg"
    out.write_text("old")

    def not_found(self, *args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr("shutil.which", lambda name: "/usr/bin/dot")
    monkeypatch.setattr(graphviz.Source, "pipe", not_found)
    with pytest.raises(RenderError, match="apt-get install graphviz"):
        render("specs/hiresnet18.yaml", out)
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["h.svg"]

    def crash(self, *args, **kwargs):
        raise graphviz.CalledProcessError(1, ["dot"], stderr=b"Error: syntax error in line 1")

    monkeypatch.setattr(graphviz.Source, "pipe", crash)
    with pytest.raises(RenderError, match="syntax error in line 1"):
        render("specs/hiresnet18.yaml", out)
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["h.svg"]


def test_unknown_suffix_and_missing_directory(tmp_path):
    with pytest.raises(RenderError, match=r"must end in one of \.svg"):
        render("specs/hiresnet18.yaml", tmp_path / "h.jpeg")
    with pytest.raises(RenderError, match="does not exist"):
        write_diagram("digraph {}", tmp_path / "nope" / "h.dot")
    assert render("specs/hiresnet18.yaml", tmp_path / "h.out", fmt="dot").read_text().startswith("digraph")


# -- diff ----------------------------------------------------------------------

WIDER = """
name: wider
input: {channels: 3, height: 32, width: 32}
nodes:
  - {id: stem, kind: conv, channels: 64, kernel: 3, stride: 1}
  - {id: stage1, kind: basic, channels: 64, depth: 2, stride: 1}
  - {id: stage2, kind: basic, channels: 160, depth: 2, stride: 2}
  - {id: stage3, kind: basic, channels: 256, depth: 2, stride: 2}
  - {id: stage4, kind: basic, channels: 512, depth: 2, stride: 2}
  - {id: extra, kind: basic, channels: 512, depth: 1}
  - {id: head, kind: classifier, classes: 10}
edges:
  - {from: stem, to: stage2}
  - {from: stem, to: stage4}
  - {from: stage1, to: stage3}
  - {from: stage1, to: stage4}
  - {from: stage2, to: stage4}
  - {from: stage1, to: extra, merge: concat}
"""


def test_diff_reports_added_removed_and_changed():
    diff = diff_specs("specs/hiresnet18.yaml", WIDER)
    lines = diff.summary()
    assert "~ node stage2: channels 128 -> 160; output 128x16x16 -> 160x16x16; params 525.6k -> 795.2k" in lines
    assert diff.nodes["extra"].status == "added"
    assert diff.nodes["head"].status == "changed" and "input stage4 -> extra" in diff.nodes["head"].details
    assert "- edge stem->stage3 (avgpool 4 -> 1x1 conv 64->256 + BN, 16.9k params)" in lines
    assert "+ edge stage1->extra (avgpool 8 (concat))" in lines
    # Widening stage2 changes the projections into and out of it, not their spec fields.
    assert diff.edges["stem", "stage2"].details == (
        "avgpool 2 -> 1x1 conv 64->128 + BN, 8.4k params => avgpool 2 -> 1x1 conv 64->160 + BN, 10.6k params",
    )
    assert ("stage1", "stage4") not in diff.edges and "stage1" not in diff.nodes
    before, after = count_params(load_spec("specs/hiresnet18.yaml")), count_params(load_spec(WIDER))
    assert lines[-1] == f"params: {before:,} -> {after:,} ({after - before:+,})"


def test_diff_of_a_spec_with_itself_is_empty():
    diff = diff_specs("specs/hiresnet18.yaml", "specs/hiresnet18.yaml")
    assert diff.empty and diff.summary()[0] == "no differences"


def test_diff_diagram_colours():
    dot = diff_dot("specs/hiresnet18.yaml", WIDER)
    assert all(REMOVED in line and "dashed" in line for line in edge_lines(dot, "stem", "stage3"))
    assert all(ADDED in line for line in edge_lines(dot, "stage1", "extra"))
    assert all(CHANGED in line for line in edge_lines(dot, "stem", "stage2"))
    assert not any(c in line for c in (ADDED, REMOVED, CHANGED) for line in edge_lines(dot, "stage1", "stage4"))
    assert "stage4 -> head" in dot and "stage4 -> extra" in dot  # the old and the new main path
    node = {line.split(" [")[0].strip(): line for line in dot.splitlines() if " [" in line and "->" not in line}
    assert CHANGED in node["stage2"] and ADDED in node["extra"] and "channels 128 -&gt; 160" in node["stage2"]


# -- CLI -------------------------------------------------------------------------


def test_cli_render_and_errors(tmp_path, monkeypatch):
    runner = CliRunner()
    out = tmp_path / "h.dot"
    result = runner.invoke(main, ["render", "specs/hiresnet18.yaml", "-o", str(out), "--rankdir", "LR", "--disabled", "stem:stage4"])
    assert result.exit_code == 0, result.output
    assert "rankdir=LR" in out.read_text() and "(disabled)" in out.read_text()
    result = runner.invoke(main, ["render", "specs/hiresnet18-in.yaml", "-o", str(out), "--show-ablated", "specs/hiresnet18.yaml"])
    assert result.exit_code == 0 and "(ablated)" in out.read_text()
    result = runner.invoke(main, ["render", "specs/hiresnet18.yaml", "-o", str(tmp_path / "h.gif")])
    assert result.exit_code == 1 and result.output.startswith("error:")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(main, ["render", "specs/hiresnet18.yaml", "-o", str(tmp_path / "h.svg")])
    assert result.exit_code == 1 and "apt-get install graphviz" in result.output
    assert not (tmp_path / "h.svg").exists()


def test_cli_diff(tmp_path):
    wider = tmp_path / "wider.yaml"
    wider.write_text(WIDER)
    out = tmp_path / "d.dot"
    result = CliRunner().invoke(main, ["diff", "specs/hiresnet18.yaml", str(wider), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:-1] == diff_specs("specs/hiresnet18.yaml", WIDER).summary()
    assert out.read_text() == diff_dot("specs/hiresnet18.yaml", WIDER)


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_cli_gallery_draws_every_spec_and_reports_broken_ones(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("resnet18.yaml", "hiresnet18.yaml"):
        shutil.copy(ROOT / "specs" / name, specs / name)
    (specs / "broken.yaml").write_text("version: 1\ninput: {channels: 3, height: 8, width: 8}\nnodes: []\n")
    result = CliRunner().invoke(main, ["gallery", str(specs), "-o", str(tmp_path / "docs" / "gallery")])
    assert result.exit_code == 1 and "broken.yaml" in result.output
    page = (tmp_path / "docs" / "gallery.md").read_text()
    for name in ("resnet18", "hiresnet18"):
        assert f"![{name}](gallery/{name}.svg)" in page
        assert (tmp_path / "docs" / "gallery" / f"{name}.svg").exists()
    assert "## broken" in page and "Could not be drawn" in page


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_docs_gallery_is_up_to_date(tmp_path):
    entries = write_gallery("specs", tmp_path / "gallery", tmp_path / "gallery.md")
    assert [e.error for e in entries if e.error] == []
    expected = (tmp_path / "gallery.md").read_text()
    assert (ROOT / "docs" / "gallery.md").read_text() == expected, "docs/gallery.md is stale: run 'make gallery'"


def test_a_compiled_models_disabled_edges_are_drawn_dashed():
    from hrgraph import compile_model

    model = compile_model("specs/hiresnet18.yaml").set_edges(disabled=["stem:stage4", "stage1:stage3"])
    dot = to_dot(model.spec, disabled=model.disabled_edges)  # names like "stem->stage4"
    assert dot == to_dot("specs/hiresnet18.yaml", disabled=["stem:stage4", "stage1:stage3"])
    for key in [("stem", "stage4"), ("stage1", "stage3")]:
        assert all("dashed" in line for line in edge_lines(dot, *key))


# -- free text in diagrams and the gallery page -------------------------------------------------------


HOSTILE_NAMES = ["ends-in\\", "<b>html</b>", "<x>", 'quote"d', "tricky\\\"", "\\N\\G", "two\nlines"]


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_any_spec_name_gives_valid_dot_drawn_as_written(name):
    spec = load_spec("specs/hiresnet18.yaml").replace(name=name)
    for source in (to_dot(spec), diff_dot(spec, spec.replace(name=name + "2"))):
        result = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True)
        assert result.returncode == 0, result.stderr.decode()
    svg = ET.fromstring(subprocess.run(["dot", "-Tsvg"], input=to_dot(spec).encode(), capture_output=True).stdout)
    texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    title = " ".join(t for t in texts if "nodes," in t or t in name.splitlines())
    assert name.split("\n")[0] in title  # the name is shown as written, not as an escape or markup


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_gallery_goes_on_past_a_spec_graphviz_fails_on_and_writes_its_index(tmp_path, monkeypatch):
    import hrgraph.draw.gallery as gallery

    specs = tmp_path / "specs"
    specs.mkdir()
    for name in ("a.yaml", "b.yaml", "c.yaml"):
        shutil.copy(ROOT / "specs" / "resnet18.yaml", specs / name)

    def flaky(source, path, **kwargs):
        if Path(path).stem == "b":
            raise RenderError("Graphviz failed: syntax error in line 1", path=str(path))
        return write_diagram(source, path, **kwargs)

    monkeypatch.setattr(gallery, "write_diagram", flaky)
    result = CliRunner().invoke(main, ["gallery", str(specs), "-o", str(tmp_path / "g")])
    assert result.exit_code == 1
    assert "Graphviz failed" in result.stderr
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["a.svg", "c.svg"]
    page = (tmp_path / "g.md").read_text()
    assert "![resnet18](g/a.svg)" in page and "![resnet18](g/c.svg)" in page
    assert "Could not be drawn: " in page


def test_gallery_page_keeps_free_text_inert(tmp_path):
    from hrgraph.draw.gallery import GalleryEntry, _markdown

    entry = GalleryEntry(
        spec=Path("specs/evil.yaml"), image=tmp_path / "evil.svg", name="<script>x</script> | a\\",
        description="line one\n\n# not a heading | <img src=x>", summary="1 | 0 | 1 | 0 | 3x8x8",
    )
    page = _markdown([entry], tmp_path / "page.md", Path("specs"))
    assert "<script>" not in page and "<img" not in page
    assert "\n# not a heading" not in page
    row = next(line for line in page.splitlines() if line.startswith("| ["))
    assert row.count(" | ") == 5 and "\\|" in row  # six cells: the name's '|' is escaped, not a seventh


# -- feedback and time (issue 17.7) ------------------------------------------

FEEDBACK_SPEC = """
name: fb
input: {channels: 3, height: 32, width: 32}
time: {steps: 3, readout: mean}
nodes:
  - {id: stem, kind: conv, channels: 16}
  - {id: s1, kind: basic, channels: 16, depth: 1}
  - {id: s2, kind: basic, channels: 32, depth: 1, stride: 2, input: [s1, {from: s2, delay: 1}]}
  - {id: head, kind: classifier, classes: 10}
edges:
  - {from: s2, to: s1, delay: 1, upsample: nearest}
  - {from: stem, to: s2}
"""


def dot_line(dot: str, src: str, dst: str) -> str:
    """The one DOT statement drawing the edge src -> dst directly."""
    lines = [line.strip() for line in dot.splitlines() if line.strip().startswith(f"{src} -> {dst} [")]
    assert len(lines) == 1, lines
    return lines[0]


def test_feedback_edges_are_dashed_point_back_and_name_delay_and_upsampling():
    dot = to_dot(FEEDBACK_SPEC)
    back = dot_line(dot, "s2", "s1")
    assert "style=dashed" in back and "constraint=false" in back and f'color="{FEEDBACK}"' in back
    assert "delay 1, nearest upsample 2 -&gt; 1x1 conv 32-&gt;16 + BN" in back
    loop = dot_line(dot, "s2", "s2")  # the delayed self-loop of s2's list input
    assert "style=dashed" in loop and "delay 1" in loop
    forward = edge_lines(dot, "stem", "s2")  # an undelayed long-range edge keeps its style and ranks
    assert forward and all("dashed" not in line and "constraint" not in line for line in forward)
    assert "time: biological, 3 steps, readout mean; 2 delayed links (dashed)" in dot
    assert "delayed link (feedback, recurrence)" in dot  # the legend


def test_cornet_rt_delayed_inputs_are_edges_into_their_nodes():
    dot = to_dot("specs/examples/cornet-rt.yaml")
    for below, area in [("V1", "V2"), ("V2", "V4"), ("V4", "IT")]:
        link = dot_line(dot, below, f"{area}_input")
        # Forward in the computation order: dashed and labelled, but it still ranks the node below.
        assert "style=dashed" in link and 'label="delay 1"' in link and "constraint" not in link
    for area in ("V1", "V2", "V4", "IT"):
        assert "constraint=false" in dot_line(dot, area, area)
    assert "time: biological, 5 steps, readout last" in dot
    assert "time: sequential" in to_dot("specs/examples/cornet-s.yaml")
    assert "time:" not in to_dot("specs/hiresnet18.yaml")


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="needs Graphviz's dot")
def test_cornet_rt_svg_connects_every_input_node(tmp_path):
    out = render("specs/examples/cornet-rt.yaml", tmp_path / "rt.svg")
    ns = "{http://www.w3.org/2000/svg}"
    titles = {t.text for g in ET.parse(out).getroot().iter(f"{ns}g") if g.get("class") == "edge" for t in g.iter(f"{ns}title")}
    for below, area in [("V1", "V2"), ("V2", "V4"), ("V4", "IT")]:
        assert f"{below}->{area}_input" in titles and f"{area}->{area}" in titles


# -- tooltips (issue 18.5) ---------------------------------------------------


def svg_tooltips(path: Path) -> list[str]:
    """Every hover text of an SVG: the xlink:title of its links."""
    ns = "{http://www.w3.org/2000/svg}"
    return [a.get("{http://www.w3.org/1999/xlink}title") for a in ET.parse(path).getroot().iter(f"{ns}a")]


@pytest.mark.needs_dot
@pytest.mark.skipif(not HAS_DOT, reason="needs Graphviz's dot")
def test_rendered_svg_carries_tooltips_with_params_and_macs(tmp_path):
    out = tmp_path / "h.svg"
    result = CliRunner().invoke(main, ["render", "specs/hiresnet18.yaml", "-o", str(out)])
    assert result.exit_code == 0, result.output
    tips = svg_tooltips(out)
    plan = infer_shapes(load_spec("specs/hiresnet18.yaml"))
    node = plan.nodes["stage2"]
    stage2 = [t for t in tips if t.startswith("stage2: ")]
    assert stage2 and f"params {node.params:,}" in stage2[0] and f"MACs {node.macs:,}" in stage2[0]
    edge = plan.projections["stem", "stage4"]
    stem4 = [t for t in tips if t.startswith("stem->stage4: ")]
    assert stem4 and f"params {edge.params:,}" in stem4[0] and f"MACs {edge.macs:,}" in stem4[0]
    assert "\n" in stem4[0]  # one fact a line


def test_tooltips_of_list_inputs_and_merges():
    dot = to_dot(FEEDBACK_SPEC)
    plan = infer_shapes(load_spec(FEEDBACK_SPEC))
    projection = plan.merges["s2"].inputs[1]
    loop = dot_line(dot, "s2", "s2")
    assert "input 2 of 2" in loop and f"params {projection.params:,}" in loop and "runs 2 times per forward" in loop
    assert "input: sum of 2 inputs" in next(line for line in dot.splitlines() if line.strip().startswith("s2 ["))


# -- collapsed diagrams (issue 18.5) -----------------------------------------


def test_collapse_draws_one_box_per_stage_with_totals_that_add_up(tmp_path):
    from hrgraph.build.cost import Cost
    from hrgraph.draw.collapse import collapse

    spec = tmp_path / "ws.yaml"
    result = CliRunner().invoke(main, ["generate", "ws", "--nodes", "60", "--seed", "2", "--input", "3x32x32", "--classes", "10", "-o", str(spec)])
    assert result.exit_code == 0, result.output
    plan = infer_shapes(load_spec(spec))
    groups, links = collapse(plan)
    assert list(groups) == ["conv1", "conv2", "conv3", "conv4", "conv5", "head"]
    assert sum(len(g.nodes) for g in groups.values()) == len(plan.spec.nodes)
    total = sum((x.cost for x in [*groups.values(), *links.values()]), Cost())
    assert (total.params, total.macs) == (plan.params, plan.macs)
    into_conv4 = [link for (a, b), link in links.items() if b == "conv4"]
    # Every link into conv4 comes from conv3, all aggregated into one edge.
    assert len(into_conv4) == 1 and into_conv4[0].count == sum(1 for n in groups["conv4"].nodes for s in plan.nodes[n].inputs if s.startswith("conv3_"))
    out = tmp_path / "ws.dot"
    result = CliRunner().invoke(main, ["render", str(spec), "--collapse", "-o", str(out)])
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    drawn = {line.strip().split(" ")[0] for line in dot.splitlines() if line.strip().endswith("]") and "->" not in line}
    assert {"conv3", "conv4", "conv5"} <= drawn and not any(n.startswith("conv3_") for n in drawn)
    assert f"{len(groups['conv3'].nodes)} nodes" in dot and "(collapsed)" in dot
    result = CliRunner().invoke(main, ["render", str(spec), "--collapse", "--disabled", "a:b", "-o", str(out)])
    assert result.exit_code == 2 and "--collapse" in result.output


def test_collapse_keeps_delayed_links_between_groups():
    from hrgraph.draw.collapse import collapsed_dot

    dot = collapsed_dot("specs/examples/cornet-rt.yaml")
    link = dot_line(dot, "V1", "V2")
    assert "style=dashed" in link and "1 link, delayed" in link and "constraint" not in link
    box = next(line for line in dot.splitlines() if line.strip().startswith("V2 ["))
    assert "2 nodes" in box and "2 links inside" in box


# -- colouring by an analysis (issue 18.5) -----------------------------------


def test_color_by_contribution_and_edgecut(tmp_path):
    from hrgraph.draw.overlay import PALETTE, UNMEASURED

    (tmp_path / "contributions.csv").write_text(
        "node,path,kind,ratio,mean_abs\nstage4,block,block,1.0,2.0\nstage4,stem->stage4,projection,0.1,0.2\n"
        "stage4,stage2->stage4,projection,0.5,1.0\nstage3,stem->stage3,projection,nan,nan\n"
    )
    dot = to_dot("specs/hiresnet18.yaml", color_by=("contribution", tmp_path))
    assert all(f'color="{PALETTE[-1]}"' in line for line in edge_lines(dot, "stage2", "stage4"))
    assert all(f'color="{PALETTE[0]}"' in line for line in edge_lines(dot, "stem", "stage4"))
    assert all(f'color="{UNMEASURED}"' in line for line in edge_lines(dot, "stem", "stage3"))  # nan: not measured
    assert "ratio 0.5" in dot and "edge colour: contribution ratio" in dot and "not measured" in dot
    (tmp_path / "edgecut.csv").write_text("cut,disabled,change\nnone,,0.0\nstem->stage2,stem->stage2,-0.02\nstage1->stage3,x,-0.10\nall,x,-0.3\n")
    dot = to_dot("specs/hiresnet18.yaml", color_by=("edgecut", tmp_path))
    assert all(f'color="{PALETTE[-1]}"' in line for line in edge_lines(dot, "stage1", "stage3"))
    assert "drop 2.00 pp" in dot and "accuracy drop when cut" in dot


def test_color_by_refuses_missing_and_mismatched_files(tmp_path):
    with pytest.raises(RenderError, match="no contributions.csv"):
        to_dot("specs/hiresnet18.yaml", color_by=("contribution", tmp_path))
    (tmp_path / "edgecut.csv").write_text("cut,change\nstem->nowhere,-0.1\n")
    with pytest.raises(RenderError, match="names 1 edge.*another spec"):
        to_dot("specs/hiresnet18.yaml", color_by=("edgecut", tmp_path))
    (tmp_path / "edgecut.csv").write_text("cut,accuracy\nstem->stage2,0.9\n")
    with pytest.raises(RenderError, match="no column 'change'"):
        to_dot("specs/hiresnet18.yaml", color_by=("edgecut", tmp_path))
    (tmp_path / "edgecut.csv").write_text("cut,change\nstem->stage2,lots\n")
    with pytest.raises(RenderError, match="not a number") as err:
        to_dot("specs/hiresnet18.yaml", color_by=("edgecut", tmp_path))
    assert err.value.line == 2
    result = CliRunner().invoke(main, ["render", "specs/hiresnet18.yaml", "-o", str(tmp_path / "h.dot"), "--color-by", "contribution", str(tmp_path)])
    assert result.exit_code == 1 and "no contributions.csv" in result.output
