"""module_utils/postmortem_document.py: the Markdown file - a marked block per field, a rerun that keeps
human edits, file names that never overwrite another incident - from fixtures, no lab."""
import pytest

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_document as pm
from ansible_collections.quantum.runbooks.plugins.module_utils import (
    postmortem_render,
)
from ansible_collections.quantum.runbooks.tests.unit.postmortem_fixtures import compose


def test_document_has_every_field_and_a_marked_block_each():
    blocks = postmortem_render.render_blocks(compose())
    doc = pm.render_document(blocks, "execution_stuck-20261128T120200Z", "2026-11-28_execution_stuck.png")
    assert doc.startswith("<!-- qt:postmortem incident_id=execution_stuck-20261128T120200Z -->\n")
    assert pm.incident_of(doc) == "execution_stuck-20261128T120200Z"
    for name in pm.BLOCKS:
        assert doc.count("<!-- qt:generated:%s begin -->" % name) == 1
        assert doc.count("<!-- qt:generated:%s end -->" % name) == 1
    for title in ("## 1. Root cause", "## 2. Detection time", "## 3. Resolution time", "## 4. Orders affected",
                  "## 5. PnL impact", "## 6. Prevention", "## Timeline"):
        assert title in doc
    assert doc.count(pm.CONFIRM) == 6 and "![Orders submitted vs answered](2026-11-28_execution_stuck.png)" in doc
    assert "| c2 | ETHUSDT | qtx-c2 | 2026-11-28 12:00:40 | no answer, lost on restart |" in doc
    assert "- [ ] `EXECUTOR_HUNG`: A liveness check on the heartbeat" in doc


def test_rerun_keeps_human_edits_and_updates_generated_blocks():
    first = postmortem_render.render_blocks(compose())
    doc = pm.render_document(first, "INC-1", "a.png")
    edited = doc.replace("_Human notes:_", "_Human notes:_ a bad deploy at 11:55, see CHG-1234", 1)
    edited = edited.replace("- [ ] (owner, due date)", "- [ ] alert on heartbeats (Ann)")
    edited = edited.replace(first["detection"], first["detection"] + "\nA human line inside a generated block.")
    second = postmortem_render.render_blocks(compose(income={"status": "unknown",
                                                             "reason": "Binance unreachable (refused)"}))
    merged, kept = pm.merge_document(edited, second, "a.png")
    assert kept == []
    assert "a bad deploy at 11:55, see CHG-1234" in merged and "alert on heartbeats (Ann)" in merged
    assert "A human line inside a generated block." not in merged  # generated blocks are the generator's
    assert "unknown - Binance unreachable (refused)" in merged and "net -1.25 USDT" not in merged
    assert pm.merge_document(merged, second, "a.png") == (merged, [])  # the same evidence: the same text


def test_a_block_without_markers_belongs_to_the_human():
    blocks = postmortem_render.render_blocks(compose())
    doc = pm.render_document(blocks, "INC-1", "a.png")
    mine = doc.replace("<!-- qt:generated:prevention begin -->\n", "").replace(
        "\n<!-- qt:generated:prevention end -->", "")
    mine = mine.replace("- [ ] `EXECUTOR_HUNG`: A liveness", "- [x] Mine: liveness")
    new = postmortem_render.render_blocks(compose(income={"status": "unknown", "reason": "x"}))
    merged, kept = pm.merge_document(mine, new, "a.png")
    assert kept == ["prevention"] and "- [x] Mine: liveness" in merged and "unknown - x" in merged


def test_file_names_never_overwrite_another_incident():
    other = "<!-- qt:postmortem incident_id=INC-0 -->\n..."
    assert pm.choose_file("2026-11-28", "INC-1", {}) == ("2026-11-28_execution_stuck.md", False)
    existing = {"2026-11-28_execution_stuck.md": other, "notes.txt": ""}
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-28_execution_stuck-2.md", False)
    existing["2026-11-28_execution_stuck-2.md"] = other.replace("INC-0", "INC-2")
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-28_execution_stuck-3.md", False)
    existing["2026-11-28_execution_stuck-3.png"] = ""  # a stray chart is not overwritten either
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-28_execution_stuck-4.md", False)
    existing["2026-11-27_execution_stuck-5.md"] = other.replace("INC-0", "INC-1")  # found on any day
    assert pm.choose_file("2026-11-28", "INC-1", existing) == ("2026-11-27_execution_stuck-5.md", True)
    assert pm.choose_file("2026-11-28", "INC-2", existing) == ("2026-11-28_execution_stuck-2.md", True)
    full = {"2026-11-29_execution_stuck%s.md" % ("" if n == 1 else "-%d" % n): other for n in range(1, 100)}
    with pytest.raises(ValueError, match="99 post-mortems on 2026-11-29"):
        pm.choose_file("2026-11-29", "INC-1", full)
    assert pm.chart_name("2026-11-28_execution_stuck-2.md") == "2026-11-28_execution_stuck-2.png"
