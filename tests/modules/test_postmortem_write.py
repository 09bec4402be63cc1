"""quantum.runbooks.postmortem_write through the `ansible` CLI (tests/ansible_run.py): file naming, human edits
kept on reruns, check mode and diff, the chart beside the Markdown. No lab, files in pytest's tmp_path."""
import base64

from ansible_run import run_module

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_document

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake chart").decode()


def blocks(tag="v1"):
    out = {name: "generated %s text of %s" % (tag, name) for name in postmortem_document.BLOCKS}
    out["chart"] = "![chart](%s)" % postmortem_document.CHART_TOKEN
    return out


def write(folder, incident="INC-1", tag="v1", check=False, diff=False, **over):
    args = dict(dir=str(folder), incident_id=incident, date="2026-11-28", blocks=blocks(tag), chart_png=PNG)
    args.update(over)
    return run_module("postmortem_write", args, check=check, diff=diff)[0]


def test_check_mode_writes_nothing_and_shows_the_document(tmp_path):
    folder = tmp_path / "RUNBOOKS" / "postmortems"
    r = write(folder, check=True, diff=True)
    assert not r.get("failed") and r["changed"] is True and r["created"] is True
    assert r["path"] == str(folder / "2026-11-28_execution_stuck.md") and not folder.exists()
    assert r["diff"][0]["before"] == "" and "generated v1 text of root_cause" in r["diff"][0]["after"]
    assert r["diff"][1]["prepared"].endswith("2026-11-28_execution_stuck.png: chart created (18 bytes)")


def test_create_then_rerun_keeps_human_edits(tmp_path):
    r = write(tmp_path)
    md, png = tmp_path / "2026-11-28_execution_stuck.md", tmp_path / "2026-11-28_execution_stuck.png"
    assert r["changed"] is True and r["created"] is True and r["chart_path"] == str(png)
    text = md.read_text()
    assert postmortem_document.incident_of(text) == "INC-1" and "![chart](2026-11-28_execution_stuck.png)" in text
    assert png.read_bytes() == base64.b64decode(PNG) and oct(md.stat().st_mode & 0o777) == "0o644"
    assert write(tmp_path)["changed"] is False  # the same evidence: nothing to do

    md.write_text(text.replace("_Human notes:_", "_Human notes:_ the deploy at 11:55 did it", 1))
    md.chmod(0o600)
    r = write(tmp_path, tag="v2", diff=True)
    assert r["changed"] is True and r["created"] is False and r["path"] == str(md)
    text = md.read_text()
    assert "the deploy at 11:55 did it" in text and "generated v2 text of root_cause" in text
    assert "generated v1" not in text and oct(md.stat().st_mode & 0o777) == "0o600"  # an update keeps the mode
    assert "-generated v1 text of summary" in "\n".join("-" + line for line in r["diff"][0]["before"].splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-11-28_execution_stuck.md",
                                                          "2026-11-28_execution_stuck.png"]  # no temporary left


def test_another_incident_the_same_day_gets_a_new_number(tmp_path):
    write(tmp_path, incident="INC-1")
    first = (tmp_path / "2026-11-28_execution_stuck.md").read_text()
    r = write(tmp_path, incident="INC-2", tag="second")
    assert r["path"] == str(tmp_path / "2026-11-28_execution_stuck-2.md") and r["created"] is True
    assert r["existing"] == ["2026-11-28_execution_stuck.md"]
    r = write(tmp_path, incident="INC-3", chart_png=None)
    assert r["path"].endswith("2026-11-28_execution_stuck-3.md") and r["chart_path"] is None
    assert "![chart]((no chart))" in (tmp_path / "2026-11-28_execution_stuck-3.md").read_text()
    assert not (tmp_path / "2026-11-28_execution_stuck-3.png").exists()
    r = write(tmp_path, incident="INC-2", tag="again")
    assert r["path"].endswith("-2.md") and r["created"] is False
    assert (tmp_path / "2026-11-28_execution_stuck.md").read_text() == first  # never touched


def test_a_block_a_human_took_over_is_left_alone(tmp_path):
    write(tmp_path)
    md = tmp_path / "2026-11-28_execution_stuck.md"
    md.write_text(md.read_text().replace("<!-- qt:generated:prevention begin -->", "").replace(
        "generated v1 text of prevention", "our own prevention plan"))
    r = write(tmp_path, tag="v2")
    assert r["human_blocks"] == ["prevention"] and "our own prevention plan" in md.read_text()
    assert "generated v2 text of pnl_impact" in md.read_text()


def test_bad_input_fails_clearly(tmp_path):
    r = write(tmp_path, incident="bad id <!--")
    assert r["failed"] is True and r["msg"].startswith("incident_id must be")
    r = write(tmp_path, date="28.11.2026")
    assert r["failed"] is True and r["msg"] == "date must be YYYY-MM-DD, got '28.11.2026'"
    r = write(tmp_path, blocks={"summary": "x"})
    assert r["failed"] is True and r["msg"].startswith("blocks is missing root_cause, detection")
    r = write(tmp_path, chart_png="not base64!")
    assert r["failed"] is True and r["msg"].startswith("cannot plan the post-mortem")
    assert list(tmp_path.iterdir()) == []
