"""tests/lint/check_document.py passes on the real files and fails, with a clear message, on a
mismatch between the document and the state machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(REPO, "tests", "lint", "check_document.py")
ASL = os.path.join(REPO, "statemachine", "build.asl.json")
DOCUMENT = os.path.join(REPO, "ssm-documents", "build.yml")


def run(document=DOCUMENT, asl=ASL):
    return subprocess.run([sys.executable, CHECK, "--document", str(document), "--asl", str(asl)], capture_output=True, text=True)


def write_variant(tmp_path, change_doc=None, change_asl=None):
    with open(DOCUMENT) as f:
        doc = yaml.safe_load(f)
    with open(ASL) as f:
        asl = json.load(f)
    if change_doc:
        change_doc(doc)
    if change_asl:
        change_asl(asl)
    d, a = tmp_path / "doc.yml", tmp_path / "asl.json"
    d.write_text(yaml.safe_dump(doc))
    a.write_text(json.dumps(asl))
    return d, a


def test_real_files_pass():
    r = run()
    assert r.returncode == 0, r.stderr


def test_parameter_sent_but_not_declared(tmp_path):
    d, a = write_variant(tmp_path, change_doc=lambda doc: doc["parameters"].pop("KmsKeyId"))
    r = run(d, a)
    assert r.returncode == 1
    assert "state RunBuild sends parameter KmsKeyId, which the document does not declare" in r.stderr


def test_required_parameter_not_sent(tmp_path):
    def drop(asl):
        del asl["States"]["RunBuild"]["Parameters"]["Parameters"]["Region"]

    r = run(*write_variant(tmp_path, change_asl=drop))
    assert r.returncode == 1
    assert "state RunBuild does not send required parameter Region" in r.stderr


def test_parameter_without_env_var_interpolation(tmp_path):
    def plain(doc):
        del doc["parameters"]["Command"]["interpolationType"]

    r = run(*write_variant(tmp_path, change_doc=plain))
    assert r.returncode == 1 and "parameter Command: interpolationType is not ENV_VAR" in r.stderr


def test_double_brace_reference_in_a_script(tmp_path):
    def splice(doc):
        doc["mainSteps"][0]["inputs"]["runCommand"].append("echo {{ Command }}")

    r = run(*write_variant(tmp_path, change_doc=splice))
    assert r.returncode == 1 and "double-brace reference" in r.stderr


def test_unparsable_document(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("parameters: [\n")
    r = run(bad)
    assert r.returncode == 1 and "not valid YAML" in r.stderr


def _with_pattern(name, pattern):
    def change(doc):
        doc["parameters"][name]["allowedPattern"] = pattern
    return change


def test_repeat_count_above_1000_is_rejected(tmp_path):
    # SSM Agent checks allowedPattern with Go's regexp, which caps repeat counts at 1000
    # ("invalid repeat count"): a document with {1,2048} fails every build. Python's re accepts it.
    r = run(*write_variant(tmp_path, change_doc=_with_pattern("TaskToken", "^[A-Za-z0-9+/=_.:-]{1,2048}$")))
    assert r.returncode == 1
    assert "parameter TaskToken: allowedPattern: repeat count {1,2048} above 1000" in r.stderr


def test_repeat_count_of_1000_is_accepted(tmp_path):
    r = run(*write_variant(tmp_path, change_doc=_with_pattern("KmsKeyId", "^[A-Za-z0-9:/_-]{0,1000}$")))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("pattern, message", [
    ("^(?!-)[A-Za-z0-9-]*$", "negative lookahead"),
    ("^(?<=a)b*$", "lookbehind"),
    ("^(a)\\1?$", "backreference \\1"),
    ("^[a-z]*+$", "nested or possessive"),
    ("^(?>a|b)*$", "atomic group"),
    ("^[a-z]*\\Z", "escape \\Z"),
])
def test_constructs_go_regexp_does_not_support_are_rejected(tmp_path, pattern, message):
    r = run(*write_variant(tmp_path, change_doc=_with_pattern("BuildTarget", pattern)))
    assert r.returncode == 1
    assert "parameter BuildTarget: allowedPattern:" in r.stderr and message in r.stderr


def test_unguarded_array_expansion_in_the_linux_step_is_rejected(tmp_path):
    def unguard(doc):
        step = doc["mainSteps"][0]
        step["inputs"]["runCommand"][0] = step["inputs"]["runCommand"][0].replace(
            '${INPUTS[@]+"${INPUTS[@]}"}', '"${INPUTS[@]}"')

    r = run(*write_variant(tmp_path, change_doc=unguard))
    assert r.returncode == 1
    assert '"${INPUTS[@]}" fails under set -u on bash < 4.4' in r.stderr
