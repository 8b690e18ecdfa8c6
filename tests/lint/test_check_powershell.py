"""tests/lint/check_powershell.py (the PowerShell part of `make lint`) passes on the shipped files,
finds every PowerShell script, and fails, naming file and line, on a planted syntax error, on
PowerShell 7 syntax, and on Linux and Windows steps whose sections differ."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(REPO, "tests", "lint", "check_powershell.py")
DOCUMENT = os.path.join(REPO, "ssm-documents", "build.yml")
AMI = os.path.join(REPO, "cloudformation", "windows-build-ami.yml")
TEMPLATE = os.path.join(REPO, "cloudformation", "template.yml")

def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, CHECK, *args], capture_output=True, text=True, cwd=REPO)


def planted(tmp_path, source: str, old: str, new: str, name: str) -> tuple[str, int]:
    """A copy of `source` with the first `old` replaced by `new`; returns its path and the
    (1-based) line of the replacement."""
    with open(source) as f:
        text = f.read()
    at = text.index(old)
    path = tmp_path / name
    path.write_text(text[:at] + new + text[at + len(old):])
    return str(path), text[:at].count("\n") + 1


def test_shipped_scripts_pass_and_every_script_is_found():
    r = run("--list")
    assert r.returncode == 0, r.stderr
    names = r.stdout.splitlines()
    assert "step WindowsBuild" in names
    assert any(n.startswith("step WindowsBuild > script generated at ssm-documents/build.yml:") for n in names)
    assert "WindowsLaunchTemplate user data" in names
    components = [n for n in names if "Component " in n]
    assert {n.split(" ")[0] for n in components} >= {"DockerComponent", "BuildToolsComponent", "MiniforgeComponent"}
    assert any("validate/" in n for n in components)


def test_planted_syntax_error_in_the_document_fails_at_its_line(tmp_path):
    doc, line = planted(tmp_path, DOCUMENT, "            Start-Heartbeat\n",
                        "            Start-Heartbeat\n            if ($Inputs.Count -gt 0 {\n", "build.yml")
    r = run("--document", doc, "--template", TEMPLATE)
    assert r.returncode == 1
    assert f"build.yml:{line + 1}:" in r.stderr and "step WindowsBuild" in r.stderr, r.stderr


def test_planted_syntax_error_in_a_generated_script_is_found(tmp_path):
    doc, line = planted(tmp_path, DOCUMENT, "          $global:LASTEXITCODE = 0\n          & (Join-Path",
                        "          $global:LASTEXITCODE = (0\n          & (Join-Path", "build.yml")
    r = run("--document", doc, "--template", TEMPLATE)
    assert r.returncode == 1
    assert "> script generated at" in r.stderr, r.stderr


@pytest.mark.parametrize("code, reason", [
    ("Write-Output a && Write-Output b", "pipeline chain operator && is PowerShell 7 only"),
    ("Write-Output a || Write-Output b", "pipeline chain operator || is PowerShell 7 only"),
    ("$x = $env:TEMP ?? 'C:/Temp'", "null-coalescing operator"),
    ("$x = $ready ? 'yes' : 'no'", "ternary operator ? : is PowerShell 7 only"),
])
def test_powershell_7_syntax_in_a_component_fails(tmp_path, code, reason):
    ami, line = planted(tmp_path, AMI, "                    - $ErrorActionPreference = 'Stop'\n",
                        f"                    - $ErrorActionPreference = 'Stop'\n                    - \"{code}\"\n", "ami.yml")
    r = run("--template", ami)
    assert r.returncode == 1
    assert f"ami.yml:{line + 1}:" in r.stderr and reason in r.stderr, r.stderr


def test_question_mark_alias_of_where_object_is_windows_powershell(tmp_path):
    ami, _ = planted(tmp_path, AMI, "                    - $ErrorActionPreference = 'Stop'\n",
                     "                    - $ErrorActionPreference = 'Stop'\n"
                     "                    - Get-ChildItem | ? { $_.Length -gt 0 } | % { $_.Name }\n", "ami.yml")
    r = run("--template", ami)
    assert r.returncode == 0, r.stderr


def test_syntax_error_in_user_data_fails(tmp_path):
    template, line = planted(tmp_path, TEMPLATE, "            <powershell>\n",
                             "            <powershell>\n            $broken = @(1, 2\n", "template.yml")
    r = run("--template", template)
    assert r.returncode == 1
    assert "WindowsLaunchTemplate user data" in r.stderr, r.stderr


def test_sections_out_of_order_fail(tmp_path):
    doc, _ = planted(tmp_path, DOCUMENT, "# ------------------------------------------------------------ 3. heartbeat",
                     "# ------------------------------------------------------------ 3. keepalive", "build.yml")
    r = run("--document", doc, "--template", TEMPLATE)
    assert r.returncode == 1
    assert "the Linux and Windows steps' sections differ" in r.stderr and "keepalive" in r.stderr, r.stderr


def test_a_command_yaml_reads_as_a_mapping_fails(tmp_path):
    ami, line = planted(tmp_path, AMI, "                    - $ErrorActionPreference = 'Stop'\n",
                        "                    - $ErrorActionPreference = 'Stop'\n                    - Write-Output \"toolsets: a\"\n", "ami.yml")
    r = run("--template", ami)
    assert r.returncode == 1
    assert f"ami.yml:{line + 1}:" in r.stderr and "is not a string for YAML" in r.stderr, r.stderr
