"""quantum.runbooks.target_check for real (ansible localhost -m ...), no lab: facts and one line per gap."""
from ansible_run import run_module


def test_a_ready_interpreter_reports_its_platform_and_no_problem(tmp_path):
    (tmp_path / ".env").write_text("A=1\n")
    result, out = run_module("target_check", {"docker_host": "", "project_dir": str(tmp_path),
                                              "import_libraries": True})
    assert not result.get("failed") and not result["changed"], out[-2000:]
    assert result["problems"] == [] and result["libraries"] == {"requests": None}
    py = result["python"]
    assert py["abi"].startswith("cp3") and py["version_full"].startswith(py["version"] + ".")
    assert py["wheel_platforms"] and result["project"]["env"]["readable"] is True


def test_gaps_are_returned_not_raised(tmp_path):
    result, out = run_module("target_check", {"docker_host": f"unix://{tmp_path}/docker.sock",
                                              "project_dir": str(tmp_path / "missing"), "inventory": "inv.yml",
                                              "venv": str(tmp_path / "venv"), "venv_requirements": ["redis==5.3.1"]},
                             check=True)
    assert not result.get("failed"), out[-2000:]
    assert [p["code"] for p in result["problems"]] == ["DOCKER_UNREACHABLE", "PROJECT_MISSING"]
    assert len(result["problem_lines"]) == 2 and all("\n" not in line for line in result["problem_lines"])
    assert result["venv"]["exists"] is False and result["venv"]["missing"] == ["redis==5.3.1"]
