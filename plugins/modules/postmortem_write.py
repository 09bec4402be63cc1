#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: qt-runbooks contributors; Apache-2.0
"""Write the post-mortem Markdown (and its chart) on the target: a new file per incident, never over another
incident's; a rerun for the same incident id rewrites only the generated blocks and keeps human edits.
The Markdown logic is module_utils/postmortem_document.py; this module does the file work."""
from __future__ import annotations

DOCUMENTATION = r"""
---
module: postmortem_write
short_description: Write or update an "Execution Stuck" post-mortem, keeping human edits
version_added: "0.1.0"
description:
  - Writes C(<date>_execution_stuck.md) in O(dir) - or C(-2), C(-3), ... when that day already has a post-mortem of
    another incident; an existing post-mortem is never overwritten.
  - The file records its incident id in its first line (C(<!-- qt:postmortem incident_id=... -->)). When a file
    in O(dir) carries O(incident_id), that file is updated - only the text between
    C(<!-- qt:generated:<block> begin -->) and C(<!-- qt:generated:<block> end -->) is replaced, everything else
    (the human's notes, edits, follow-ups) stays as it is. A block whose markers a human removed stays theirs
    (RV(human_blocks)).
  - With O(chart_png) the chart is written beside it as C(<same name>.png) and linked from the Markdown.
  - Atomic (temporary file in O(dir), then rename); unchanged content is not rewritten (C(changed=false)).
  - Check mode computes the file name and content and writes nothing; with C(--diff) the Markdown before and after.
  - Use M(quantum.runbooks.postmortem_compose) to make O(blocks) and O(chart_png) from the evidence.
options:
  dir:
    description: Directory of the post-mortems on the target (created when missing), for example
      C(<project>/RUNBOOKS/postmortems).
    type: path
    required: true
  incident_id:
    description: The incident's id (1-80 letters, digits, C(.), C(_), C(:), C(-)); finds the file on a rerun.
    type: str
    required: true
  date:
    description: The incident's day, C(YYYY-MM-DD) (UTC), the start of a new file's name.
    type: str
    required: true
  blocks:
    description: The generated Markdown per block (C(summary), C(root_cause), C(detection), C(resolution),
      C(orders_affected), C(pnl_impact), C(prevention), C(timeline), C(chart)), without markers.
    type: dict
    required: true
  chart_png:
    description: The chart as base64 PNG; none means no chart file.
    type: str
  mode:
    description: Mode of new files (an updated file keeps its own).
    type: raw
    default: "0644"
author:
  - qt-runbooks maintainers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the post-mortem on the target
  quantum.runbooks.postmortem_write:
    dir: "{{ qt_project_dir }}/RUNBOOKS/postmortems"
    incident_id: "{{ composed.postmortem.incident_id }}"
    date: "{{ composed.postmortem.date }}"
    blocks: "{{ composed.blocks }}"
    chart_png: "{{ composed.chart_png }}"
  register: written
"""

RETURN = r"""
path:
  description: The post-mortem's path (also in check mode, where it is not written).
  type: str
  returned: always
  sample: /home/qt/quantum_trader/RUNBOOKS/postmortems/2026-11-28_execution_stuck-2.md
chart_path:
  description: The chart's path, or null without O(chart_png).
  type: str
  returned: always
created:
  description: A new post-mortem (false - the incident's own file was updated).
  type: bool
  returned: always
human_blocks:
  description: Generated blocks whose markers a human removed - left as the human wrote them.
  type: list
  elements: str
  returned: always
existing:
  description: Post-mortems found in O(dir) before the run (file names).
  type: list
  elements: str
  returned: always
"""

import base64
import binascii
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.quantum.runbooks.plugins.module_utils import postmortem_document, postmortem_evidence

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HEAD_BYTES = 4096


def existing_files(folder):
    """{name: first bytes of the text} for post-mortems, {name: ""} for anything else in ``folder``."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    out = {}
    for name in names:
        out[name] = ""
        if postmortem_document.FILE_RE.match(name):
            with open(os.path.join(folder, name), "rb") as handle:
                out[name] = handle.read(HEAD_BYTES).decode("utf-8", "replace")
    return out


def read(path, binary=False):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    return data if binary else data.decode("utf-8")


def write(module, path, data, mode):
    """Atomically: a temporary file beside ``path``, then Ansible's atomic_move (an existing file keeps its
    owner and mode)."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        new = not os.path.exists(path)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    if new:
        module.set_mode_if_different(path, mode, False)


def plan(p):
    """What to write: (result, markdown text, png bytes or None, old markdown, old png)."""
    folder = p["dir"]
    existing = existing_files(folder)
    name, own = postmortem_document.choose_file(p["date"], p["incident_id"], existing)
    path = os.path.join(folder, name)
    png = base64.b64decode(p["chart_png"], validate=True) if p["chart_png"] else None
    chart = postmortem_document.chart_name(name) if png is not None else "(no chart)"
    old = read(path) if own else None
    if old is not None:
        text, kept = postmortem_document.merge_document(old, p["blocks"], chart)
    else:
        text, kept = postmortem_document.render_document(p["blocks"], p["incident_id"], chart), []
    chart_path = os.path.join(folder, chart) if png is not None else None
    old_png = read(chart_path, binary=True) if chart_path else None
    result = {"path": path, "chart_path": chart_path, "created": old is None, "human_blocks": kept,
              "existing": sorted(n for n in existing if postmortem_document.FILE_RE.match(n)),
              "changed": text != old or (png is not None and png != old_png)}
    return result, text, png, old, old_png


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            incident_id=dict(type="str", required=True),
            date=dict(type="str", required=True),
            blocks=dict(type="dict", required=True),
            chart_png=dict(type="str"),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    missing = [b for b in postmortem_document.BLOCKS if not isinstance(p["blocks"].get(b), str)]
    bad_id = postmortem_evidence.incident_id_problem(p["incident_id"])
    if bad_id:
        module.fail_json(msg=bad_id)
    if not DATE.match(p["date"]):
        module.fail_json(msg="date must be YYYY-MM-DD, got %r" % p["date"])
    if missing:
        module.fail_json(msg="blocks is missing %s (make it with quantum.runbooks.postmortem_compose)"
                         % ", ".join(missing))
    try:
        result, text, png, old, old_png = plan(p)
    except (ValueError, binascii.Error, OSError) as err:
        module.fail_json(msg="cannot plan the post-mortem in %s: %s" % (p["dir"], err))
    if module._diff:
        result["diff"] = [{"before_header": result["path"], "after_header": result["path"], "before": old or "",
                           "after": text}]
        if png is not None and png != old_png:
            result["diff"].append({"prepared": "%s: chart %s (%d bytes)" % (
                result["chart_path"], "updated" if old_png else "created", len(png))})
    if result["changed"] and not module.check_mode:
        try:
            os.makedirs(p["dir"], exist_ok=True)
            if png is not None and png != old_png:
                write(module, result["chart_path"], png, p["mode"])
            if text != old:
                write(module, result["path"], text.encode("utf-8"), p["mode"])
        except OSError as err:
            module.fail_json(msg="cannot write the post-mortem %s: %s" % (result["path"], err), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
