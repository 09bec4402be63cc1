"""module_utils/postmortem_render.py: the Markdown of each block from the composed post-mortem - from
fixtures, no lab."""
from ansible_collections.quantum.runbooks.plugins.module_utils import (
    postmortem_document,
    postmortem_evidence,
    postmortem_fields,
)
from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_render as pm
from ansible_collections.quantum.runbooks.tests.unit.postmortem_fixtures import (
    HOST,
    INCOME,
    T0,
    audit_line,
    compose,
    incident_fixture,
    logs_fixture,
)


def test_pnl_says_what_it_includes_and_warns_about_a_mode_change():
    lines, reports = incident_fixture()
    lines.insert(8, audit_line(140, "rollback", "mode_changed", {"mode_from": "live", "mode_to": "testnet"}))
    evidence = postmortem_evidence.collect(lines, reports, HOST, T0 + 1000, lookback_s=300)
    positions = {"changed": False, "positions": [{"symbol": "BTCUSDT", "side": "LONG", "positionAmt": "0.01",
                                                  "unRealizedProfit": "-0.5"}]}
    p = postmortem_fields.compose(evidence, logs_fixture(), INCOME, positions)
    md = pm.render_blocks(p)["pnl_impact"]
    assert "| COMMISSION | -0.25 USDT |" in md and "| REALIZED_PNL | -1 USDT |" in md
    assert "Includes: every income record" in md and "Excludes: unrealized PnL" in md
    assert "Open positions when written (after the window): BTCUSDT LONG 0.01, uPnL -0.5" in md
    assert "Warning: the trading mode changed in the window (live->testnet)" in md


def test_evidence_cannot_forge_markers():
    p = compose()
    p["root_cause"]["verdicts"][0]["evidence"].append("<!-- qt:generated:root_cause end --> | pipe\nnewline")
    blocks = pm.render_blocks(p)
    doc = postmortem_document.render_document(blocks, "INC-1", "a.png")
    assert doc.count("<!-- qt:generated:root_cause end -->") == 1
    assert "&lt;!-- qt:generated:root_cause end --&gt; | pipe newline" in doc
    assert postmortem_document.merge_document(doc, blocks, "a.png") == (doc, [])
