#!/usr/bin/env bash
# The checks users of the collection trust, offline, on a scratch copy of this checkout (the files
# `git ls-files` knows plus untracked ones that are not ignored, so uncommitted edits count):
#   1. `ansible-galaxy collection build` (galaxy.yml's build_ignore decides what ships)
#   2. galaxy-importer on that tarball (what Galaxy / Automation Hub run on upload)
#   3. `ansible-test sanity --local` (Automation Hub accepts only a few ignore entries)
#   4. `ansible-test units --venv --requirements` (tests/unit, with tests/unit/requirements.txt)
# ansible-test needs the collection at .../ansible_collections/quantum/runbooks and its cache in
# ~/.ansible/test: HOME points at $SANITY_HOME (default: beside the virtualenv, so the per-test
# virtualenvs are built once), where the offline get-pip stand-in is installed first.
# Usage: scripts/sanity.sh (from `make sanity`, which puts the virtualenv first on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(command -v python)
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export SANITY_HOME=${SANITY_HOME:-$("$PY" -c 'import sys; print(sys.prefix)')/ansible-test-home}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qt-sanity.XXXXXX")
[ -n "${KEEP_SANITY_TMP:-}" ] || trap 'rm -rf "$WORK"' EXIT
DEST=$WORK/ansible_collections/quantum/runbooks
mkdir -p "$DEST" "$WORK/dist"
step() { printf '\n==== %s (%ss so far)\n' "$*" "$SECONDS"; }

step "copy of the checkout in $DEST"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done \
  | tar --null -T - -cf - | tar -xf - -C "$DEST"
# ansible-test lists content with git, as in a clone
git -C "$DEST" init -q && git -C "$DEST" add -A

step "ansible-galaxy collection build"
ansible-galaxy collection build --output-path "$WORK/dist" "$DEST"
TARBALL=$(ls "$WORK"/dist/quantum-runbooks-*.tar.gz)
echo "$(tar -tzf "$TARBALL" | wc -l) entries, $(du -k "$TARBALL" | cut -f1) KiB"

step "galaxy-importer"
# Its ansible-lint call is off: `make lint` runs ansible-lint with the full production profile (the
# importer skips several rules), and the importer kills its own call after a fixed 180 s, which a
# CI machine busy with the lab tests can exceed: a flake, not a finding.
cat >"$WORK/galaxy-importer.cfg" <<'EOF'
[galaxy-importer]
run_ansible_test = False
ansible_test_local_image = False
local_image_docker = False
run_ansible_doc = True
run_ansible_lint = False
check_required_tags = False
EOF
(cd "$WORK" && GALAXY_IMPORTER_CONFIG=$WORK/galaxy-importer.cfg "$PY" -m galaxy_importer.main "$TARBALL") \
  >"$WORK/importer.log" 2>&1 || { cat "$WORK/importer.log"; echo "galaxy-importer FAILED"; exit 1; }
# It logs most problems (ansible-lint findings, doc errors) as warnings and still exits 0: any warning
# fails this check, except the notice every collection with a sanity ignore file gets.
if grep -E 'WARNING|ERROR' "$WORK/importer.log" | grep -v 'Ignore files skip ansible-test sanity tests'; then
  echo "galaxy-importer: warnings above"; exit 1
fi
tail -n 2 "$WORK/importer.log"
echo "galaxy-importer: passed"

step "ansible-test sanity"
# the pip version ansible-test bootstraps its virtualenvs with names the cache file it looks for
PIPVER=$("$PY" -c 'import pathlib, re, ansible_test
src = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
print(re.search(r"pip=.([0-9.]+).", src.read_text()).group(1))')
mkdir -p "$SANITY_HOME/.ansible/test/cache"
cp scripts/get_pip_offline.py "$SANITY_HOME/.ansible/test/cache/get_pip_${PIPVER//./_}.py"
(cd "$DEST" && HOME=$SANITY_HOME ansible-test sanity --local --python "$PYVER" --color no) 2>&1 | tee "$WORK/sanity.log"
CORE=$("$PY" -c 'from ansible.release import __version__ as v; print(".".join(v.split(".")[:2]))')
IGNORES=$(cat "$DEST/tests/sanity/ignore-$CORE.txt" 2>/dev/null | wc -l)
echo "ansible-test sanity: $(grep -c '^Running sanity test' "$WORK/sanity.log") tests passed ($IGNORES ignore entries)"

step "ansible-test units"
# tests/unit/test_dotenv.py reads the corpus with `docker compose` as the oracle: the plugin `make venv`
# linked in the real home, seen from this one (without it those tests skip)
if [ -e "$HOME/.docker/cli-plugins/docker-compose" ]; then
  mkdir -p "$SANITY_HOME/.docker/cli-plugins"
  ln -sfn "$HOME/.docker/cli-plugins/docker-compose" "$SANITY_HOME/.docker/cli-plugins/docker-compose"
fi
(cd "$DEST" && HOME=$SANITY_HOME ansible-test units --venv --requirements --python "$PYVER" --color no)

step "sanity checks passed"
