"""module_utils/postmortem_chart.py and the postmortem_compose action's chart: a PNG, the same bytes for the
same series, and why there is no chart - from fixtures, no lab."""
from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_render
from ansible_collections.quantum.runbooks.tests.unit.postmortem_fixtures import (
    compose,
    logs_fixture,
)


def test_chart_is_a_png_and_the_same_series_gives_the_same_bytes(monkeypatch):
    from ansible_collections.quantum.runbooks.plugins.action import postmortem_compose
    from ansible_collections.quantum.runbooks.plugins.module_utils import (
        postmortem_chart,
    )

    p = compose()
    png = postmortem_chart.render_png(p["series"], "lab: INC-1")
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == postmortem_chart.render_png(p["series"], "lab: INC-1")
    assert b"matplotlib" not in png  # no version stamp: unchanged evidence, unchanged file
    chart, error = postmortem_compose.draw(p, True)
    assert error is None and chart and postmortem_compose.draw(p, False) == (None, "disabled (postmortem_chart=false)")
    monkeypatch.setattr(postmortem_chart, "HAS_MATPLOTLIB", False)
    chart, error = postmortem_compose.draw(p, True)
    assert chart is None and error.startswith("RuntimeError: matplotlib is not installed on the control node")
    assert postmortem_render.render_blocks(p, error)["chart"] == "No chart: %s." % error
    quiet = compose(logs=dict(logs_fixture(), recent_events=[], event_counts={"HEARTBEAT": 9}))
    assert postmortem_compose.draw(quiet, True) == (None, "no order event in the window")
    assert postmortem_compose.logs_problem({"skipped": True}) == "the executor's logs were not read"
    assert postmortem_compose.logs_problem({"changed": False, "msg": "cannot reach Docker"}) == \
        "cannot read the executor's logs: cannot reach Docker"
    assert postmortem_compose.logs_problem({"exists": False}).startswith("the executor container does not exist")
