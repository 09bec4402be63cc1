# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""The post-mortem's six fields, timeline and chart, composed on the control node from the evidence
(module_utils/postmortem_fields.py), rendered as Markdown (module_utils/postmortem_render.py) and
drawn with matplotlib (module_utils/postmortem_chart.py). Writes nothing:
quantum.runbooks.postmortem_write puts the result on the target."""
from __future__ import annotations

import base64

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.quantum.runbooks.plugins.module_utils import (
    postmortem_chart,
    postmortem_fields,
    postmortem_render,
)
from ansible_collections.quantum.runbooks.plugins.plugin_utils.controller_action import ControllerOnly

# Documentation: plugins/modules/postmortem_compose.py (ansible-doc reads it there).


def logs_problem(logs):
    """Why the executor's log events cannot be used, or None."""
    if not isinstance(logs, dict) or not logs or logs.get("skipped"):
        return "the executor's logs were not read"
    if "exists" not in logs:  # the module failed (the role registers it with failed_when: false)
        return "cannot read the executor's logs: %s" % (logs.get("msg") or "unknown error")
    if not logs["exists"]:
        return "the executor container does not exist (its logs went with it)"
    return None


def draw(post, enabled):
    """(PNG as base64 or None, why there is no chart or None)."""
    if not enabled:
        return None, "disabled (postmortem_chart=false)"
    if not any(post["series"]["submitted"]) and not any(post["series"]["answered"]):
        reason = post["orders"]["logs"] if post["orders"]["logs"] != "complete" else "no order event in the window"
        return None, reason
    try:
        png = postmortem_chart.render_png(post["series"], "%s: %s" % (post["host"], post["incident_id"]))
    except Exception as err:  # a missing library or a drawing problem must not cost the post-mortem
        return None, "%s: %s" % (type(err).__name__, err)
    return base64.b64encode(png).decode("ascii"), None


def compose(args):
    """The action's result from its arguments."""
    evidence = args.get("evidence")
    if not isinstance(evidence, dict) or "window" not in evidence:
        raise AnsibleActionFail("postmortem_compose needs 'evidence' from quantum.runbooks.postmortem_evidence")
    logs = args.get("logs")
    post = postmortem_fields.compose(evidence, logs, args.get("income"), args.get("positions"), logs_problem(logs))
    chart, chart_error = draw(post, boolean(args.get("chart", True), strict=False))
    return {"changed": False, "postmortem": post, "blocks": postmortem_render.render_blocks(post, chart_error),
            "chart_png": chart, "chart_error": chart_error, "fields": postmortem_render.field_lines(post)}


class ActionModule(ControllerOnly):
    def work(self, args, task_vars):
        return compose(args)
