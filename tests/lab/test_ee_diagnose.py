"""The execution environment built and run (issue 16): diagnose.yml in qt-runbooks-ee:<galaxy.yml version>
through ansible-navigator (ansible-runner in the container, as an AWX job runs) over SSH against the lab's
SSH host, beside a local diagnose on the same healthy lab: both must reach the same verdict.

The test does not build the image. It reuses the one `make ee` built (or `make ee-image`, which
`make test` runs beside the lab tests, then this test last) and fails with that advice unless the image's label
qt.ee.hash matches this checkout: the collections' content (MANIFEST.json + FILES.json of each tarball), the
definition scripts/ee.py writes from execution-environment.yml, the wheel set and the base image. On this
2-core machine a build from nothing took 3.5 to 5 minutes and a rebuild after a change to the collection 2 to
4 (docs/awx.md): too long to hide in a test.

tests/packaging/test_execution_environment.py keeps the definition valid and in step, offline."""
import hashlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# one owner, as in production
pytestmark = [pytest.mark.lab, pytest.mark.ee, pytest.mark.usefixtures("qt_owns_the_project")]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SSH_INV, LOCAL_INV = "inventory/lab-ssh.yml", "inventory/lab.yml"
# The collections' home in the image (ansible-builder's): roles and modules must come from there, not
# from this checkout, which the container sees too (the project mount).
IMAGE_COLLECTION = "/usr/share/ansible/collections/ansible_collections/quantum/runbooks"

if str(ROOT / "scripts") not in sys.path:
    sys.path.insert(0, str(ROOT / "scripts"))
import ee  # noqa: E402  (scripts/ is not a package)


@pytest.fixture(scope="module")
def image():
    """The tag of the image `make ee` built from this checkout (keyed on the content: see above)."""
    try:
        tag, current = ee.status()
    except ee.EEError as err:
        pytest.fail(str(err))
    if not current:
        pytest.fail(f"{tag} is missing or was built from other content than this checkout: run `make ee-image`")
    return tag


@pytest.fixture(scope="module")
def prepared(lab_session):
    """The SSH host with the virtualenv inventory/lab-ssh.yml names as its interpreter."""
    res = subprocess.run([str(BIN / "ansible-playbook"), "-i", SSH_INV, "playbooks/prepare_host.yml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout[-3000:]


def local_diagnose(report_dir):
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", LOCAL_INV, "diagnose.yml",
                           "-e", f"diagnose_report_dir={report_dir}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_image_holds_this_checkouts_collection(image):
    """Built or kept, the image's quantum.runbooks is this checkout's: its MANIFEST.json and FILES.json (every
    file's sha256) are those of the tarball built from galaxy.yml now."""
    res = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "cat", image,
                          f"{IMAGE_COLLECTION}/MANIFEST.json", f"{IMAGE_COLLECTION}/FILES.json"],
                         capture_output=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    meta = ee.galaxy()
    tarball = ee.BUILD / "collections" / f"{meta['namespace']}-{meta['name']}-{meta['version']}.tar.gz"
    assert hashlib.sha256(res.stdout).hexdigest() == ee.content_id(tarball)


def test_diagnose_in_the_ee_over_ssh_gets_the_local_verdict(image, prepared, lab, tmp_path):
    with ThreadPoolExecutor(2) as pool:  # side by side: the same moment of the lab
        in_ee = pool.submit(ee.diagnose, tmp_path / "ee", tag=image)
        local = pool.submit(local_diagnose, tmp_path / "local")
        try:
            report, _seconds, output = in_ee.result()
        except ee.EEError as err:
            pytest.fail(f"diagnose.yml in {image}: {err}")
        local_res = local.result()
    assert local_res.returncode == 0, local_res.stdout[-3000:]
    ee_verdict = report["verdict"]
    local_verdict = json.loads((tmp_path / "local" / "lab" / "diagnosis-latest.json").read_text())["verdict"]
    assert ee_verdict["primary"] == local_verdict["primary"], output[-3000:]
    assert ee_verdict["missing_checks"] == local_verdict["missing_checks"] == []  # every check ran in the EE
    assert {f["code"] for f in ee_verdict["findings"]} == {f["code"] for f in local_verdict["findings"]}
    assert ee_verdict["primary"] == "HEALTHY"  # the `lab` fixture healed it: a verdict, not an error, agreed
    assert report["host"] == "lab-ssh"
    # The check roles ran. Their tasks are static imports, so no "included: <path>" line says where they came
    # from: the image's collections path is set by ee.navigator_command (ANSIBLE_COLLECTIONS_PATH, as AWX does)
    # and test_the_image_holds_this_checkouts_collection proves that collection is this checkout's.
    assert "quantum.runbooks.executor_health : Record the executor's health" in output, output[-3000:]
    assert "Traceback" not in output
