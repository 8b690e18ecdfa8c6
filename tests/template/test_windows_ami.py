"""The Windows build AMI pipeline (cloudformation/windows-build-ami.yml) and its deploy script:
versions that change with every change, one writer of daemon.json, and what the image must hold
for builds (git, conda on the machine PATH, long paths, both Visual Studio toolsets). The
PowerShell itself is parsed by `make lint` (tests/lint/check_powershell.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from template_helpers import CFN_DIR, ROOT, load_template

AMI = CFN_DIR / "windows-build-ami.yml"
SCRIPT = CFN_DIR / "deploy-windows-ami.sh"


@pytest.fixture(scope="module")
def ami():
    return load_template(AMI)


def component_data(ami, name: str) -> dict:
    data = ami["Resources"][name]["Properties"]["Data"]
    text = data["Fn::Sub"] if isinstance(data, dict) else data
    return yaml.safe_load(text)


def commands(ami, component: str) -> str:
    out = []
    for phase in component_data(ami, component)["phases"]:
        for step in phase["steps"]:
            out += step.get("inputs", {}).get("commands", []) if isinstance(step.get("inputs"), dict) else []
    return "\n".join(out)


def test_every_component_and_the_recipe_take_their_version_from_the_content_revision(ami):
    versioned = {n: r for n, r in ami["Resources"].items()
                 if r["Type"] in ("AWS::ImageBuilder::Component", "AWS::ImageBuilder::ImageRecipe")}
    assert len(versioned) >= 5
    for name, resource in versioned.items():
        assert resource["Properties"]["Version"] == {"Fn::Sub": "1.0.${ContentRevision}"}, name
    recipe = ami["Resources"]["Recipe"]["Properties"]
    ours = [c["ComponentArn"]["Ref"] for c in recipe["Components"] if "Ref" in c["ComponentArn"]]
    assert set(ours) == {n for n, r in versioned.items() if r["Type"] == "AWS::ImageBuilder::Component"}


def revision(tmp_path: Path, template_text: str | None = None, parameters: str = "") -> int:
    """What deploy-windows-ami.sh derives, on a copy of the tree's cloudformation folder."""
    root = tmp_path / "tree"
    (root / "cloudformation").mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, root / "cloudformation" / SCRIPT.name)
    (root / "cloudformation" / AMI.name).write_text(template_text if template_text is not None else AMI.read_text())
    env = {**os.environ, "PRINT_REVISION": "1", "PARAMETERS": parameters, "AWS_CLI": "false"}
    r = subprocess.run(["bash", str(root / "cloudformation" / SCRIPT.name)], capture_output=True, text=True, env=env, check=True)
    return int(r.stdout.strip())


def test_deploy_script_changes_the_version_with_every_change_and_only_then(tmp_path):
    base = revision(tmp_path)
    assert base == revision(tmp_path)  # same content, same version: a deploy changes nothing
    assert 0 < base < 2**30  # Image Builder: at most 2^30 - 1 per version node
    edited = AMI.read_text().replace("Install-WindowsFeature -Name Containers", "Install-WindowsFeature -Name Containers -Verbose")
    assert revision(tmp_path, edited) != base
    assert revision(tmp_path, parameters="DockerVersion=27.5.2") != base
    assert revision(tmp_path, parameters="DockerVersion=27.5.2 GitVersion=2.47.1") == \
        revision(tmp_path, parameters="GitVersion=2.47.1 DockerVersion=27.5.2")


def test_deploy_script_passes_the_revision_to_cloudformation(tmp_path):
    fake = tmp_path / "aws"
    calls = tmp_path / "calls"
    fake.write_text(f'#!/bin/bash\necho "$@" >> {calls}\necho arn:aws:imagebuilder:eu-west-1:1:image-pipeline/x\n')
    fake.chmod(0o755)
    env = {**os.environ, "AWS_CLI": str(fake), "PARAMETERS": "DockerVersion=27.5.2"}
    subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, check=True, cwd=ROOT)
    deploy = next(line for line in calls.read_text().splitlines() if line.startswith("cloudformation deploy"))
    expected = revision(tmp_path, parameters="DockerVersion=27.5.2")
    assert f"ContentRevision={expected} DockerVersion=27.5.2" in deploy
    assert "--template-file cloudformation/windows-build-ami.yml" in deploy


def test_daemon_json_has_one_writer_and_one_size_parameter(ami):
    writers = []
    for path in sorted(CFN_DIR.glob("*.yml")):
        for name, resource in load_template(path)["Resources"].items():
            if "daemon.json" in yaml.safe_dump(resource.get("Properties", {})) and "Set-Content" in yaml.safe_dump(resource.get("Properties", {})):
                writers.append(f"{path.name}:{name}")
    assert writers == ["template.yml:WindowsLaunchTemplate"]
    assert "DockerStorageSize" not in ami["Parameters"]
    assert "ec2-build-docker-volume" not in AMI.read_text()  # no boot task either


def test_image_has_git_long_paths_and_conda_on_the_machine_path(ami):
    base = commands(ami, "BaseComponent")
    assert "LongPathsEnabled -Value 1" in base
    assert "git-for-windows/git/releases/download/v${GitVersion}.windows.1/" in base and "core.longpaths true" in base
    miniforge = commands(ami, "MiniforgeComponent")
    assert "/AddToPath" not in miniforge  # ignored for AllUsers installations
    assert "C:\\Miniforge3\\condabin" in miniforge and "'Machine'" in miniforge


def test_both_visual_studio_toolsets(ami):
    tools = commands(ami, "BuildToolsComponent")
    assert "'Microsoft.VisualStudio.Component.VC.Tools.x86.x64'" in tools  # v143 (vs2022)
    assert "'Microsoft.VisualStudio.Component.VC.v142.x86.x64'" in tools  # v142 (vs2019)
    assert ami["Parameters"]["BuildToolsBootstrapper"]["Default"].startswith("https://aka.ms/vs/17/")


@pytest.mark.parametrize("component", ["BaseComponent", "DockerComponent", "BuildToolsComponent", "MiniforgeComponent"])
def test_downloads_ask_for_tls_1_2_and_native_programs_do_not_stop_on_stderr(ami, component):
    text = commands(ami, component)
    if "Invoke-WebRequest" in text:
        assert "[Net.SecurityProtocolType]::Tls12" in text.split("Invoke-WebRequest")[0]
    for line in text.splitlines():
        if line.lstrip().startswith("'& ") or line.lstrip().startswith("& "):
            # a native program: in its own scope with 'Continue', its exit code checked after
            assert "$ErrorActionPreference = 'Continue'" in line or "$ErrorActionPreference = ''Continue''" in line, line


def test_fast_launch_is_off_by_default_and_meets_ec2s_minimum_when_on(ami):
    from template_helpers import Evaluator

    param = ami["Parameters"]["FastLaunchSnapshots"]
    assert param["Default"] == 0
    (distribution,) = ami["Resources"]["Distribution"]["Properties"]["Distributions"]
    choice = distribution["FastLaunchConfigurations"]["Fn::If"]
    assert choice[0] == "HasFastLaunch" and choice[2] == {"Ref": "AWS::NoValue"}
    assert ami["Conditions"]["HasFastLaunch"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "FastLaunchSnapshots"}, 0]}]}
    (config,) = choice[1]
    assert config["Enabled"] is True
    assert config["MaxParallelLaunches"] >= 6  # EnableFastLaunch refuses fewer
    assert config["SnapshotConfiguration"] == {"TargetResourceCount": {"Ref": "FastLaunchSnapshots"}}
