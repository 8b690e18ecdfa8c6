#!/usr/bin/env python3
r"""Static checks of the SSM build document against the state machine (run by `make lint`).

  * the document parses (YAML), is a schema 2.2 Command document with Linux and Windows steps
    chosen by platformType preconditions, and uses no double-brace references in scripts;
  * the Linux step expands arrays as ${A[@]+"${A[@]}"} (bash < 4.4 fails on empty ones under set -u);
  * every parameter is a String with interpolationType ENV_VAR; every allowedPattern compiles
    and accepts the parameter's default;
  * every allowedPattern is one that Go's regexp (RE2 syntax, what SSM Agent checks parameters
    with) accepts too: no repeat count above 1000 (the agent rejects the document with
    "invalid repeat count", so every build fails), no lookarounds, backreferences, atomic groups,
    possessive quantifiers, or escapes Go does not know (\Z, \u..., \h, ...);
  * the parameters the RunBuild state sends are exactly declared, and every required parameter
    (no default) is sent;
  * the contract's example execution input (docs/contracts.md) satisfies the patterns.

Usage: check_document.py [--document PATH] [--asl PATH]. Exit status 1 with one line per
problem on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEND_COMMAND = "arn:aws:states:::aws-sdk:ssm:sendCommand.waitForTaskToken"
CONTRACT_EXAMPLE = {
    "TaskToken": "AQCEAAAAKgAAAAMAAAAAAAAAAf+/d0v5n3==",
    "Region": "eu-west-1",
    "JobId": "8ed5d4b2-7d3e-4a59-9c8e-0123456789ab",
    "BuildKind": "command",
    "Command": "make\nmake test",
    "BuildTarget": "",
    "WorkingDirectory": "",
    "OutputArtifactPath": "dist",
    "InputArtifacts": "SourceOutput=s3://bucket/app/SourceOutp/abc123",
    "OutputArtifacts": "BuildOutput=s3://bucket/app/BuildOutpu/def456",
    "KmsKeyId": "",
    "TimeoutSeconds": "3600",
}


# RE2 (Go regexp/syntax) limits that Python's re does not share.
GO_MAX_REPEAT = 1000
# Escapes Go accepts, besides escaped punctuation and octal (\0, \1-\7 followed by a digit).
GO_ESCAPES = set("afnrtvxpPdDsSwWbBAzQE")
GO_CLASS_ESCAPES = set("afnrtvxpPdDsSwW")


def re2_problems(pattern: str) -> list[str]:
    """What Go's regexp.Compile would reject in `pattern` although Python's re accepts it."""
    problems: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    # After a repetition operator one '?' (lazy) may follow; any further operator is a nested
    # (or possessive) repetition, which RE2 rejects.
    state = "none"  # none | repeat | lazy

    def repeat_length(at: int) -> int:
        """If a {n}, {n,} or {n,m} repetition starts at `at`, its length; else 0 (a literal brace)."""
        m = re.match(r"\{([0-9]+)(,([0-9]*))?\}", pattern[at:])
        if not m:
            return 0
        counts = [int(m.group(1))] + ([int(m.group(3))] if m.group(3) else [])
        if any(c > GO_MAX_REPEAT for c in counts):
            problems.append(f"repeat count {m.group(0)} above {GO_MAX_REPEAT} (Go: invalid repeat count); use + or *")
        return len(m.group(0))

    def operator(text: str) -> None:
        nonlocal state
        if text == "?" and state == "repeat":
            state = "lazy"
            return
        if state != "none":
            problems.append(f"repetition {text} right after a repetition (nested or possessive; not in RE2)")
        state = "repeat"

    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "Q" and not in_class:  # \Q...\E: literal text
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                state = "none"
                continue
            if nxt.isdigit():
                if nxt in "123456789" and not pattern[i + 2 : i + 3].isdigit():
                    problems.append(f"backreference \\{nxt} (not in RE2)")
                elif nxt in "89":
                    problems.append(f"escape \\{nxt} (not in RE2)")
            elif nxt.isalpha() and nxt not in (GO_CLASS_ESCAPES if in_class else GO_ESCAPES):
                where = " inside a character class" if in_class else ""
                problems.append(f"escape \\{nxt}{where} (not in RE2)")
            i += 2
            state = "none"
            continue
        if in_class:
            if c == "]":
                in_class = False
                state = "none"
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if pattern[i : i + 1] == "^":
                i += 1
            if pattern[i : i + 1] == "]":  # a leading ] is literal
                i += 1
            continue
        if c == "(" and pattern[i + 1 : i + 2] == "?":
            rest = pattern[i + 2 :]
            for prefix, what in (("=", "lookahead"), ("!", "negative lookahead"), ("<=", "lookbehind"),
                                 ("<!", "negative lookbehind"), (">", "atomic group"), ("(", "conditional"),
                                 ("#", "comment group")):
                if rest.startswith(prefix):
                    problems.append(f"{what} (?{prefix}...) (not in RE2)")
                    break
            else:
                if rest.startswith("<"):
                    problems.append("named group (?<name>...) needs Go 1.22; write (?P<name>...)")
            i += 2
            state = "none"
            continue
        if c in "*+?":
            operator(c)
            i += 1
            continue
        if c == "{":
            length = repeat_length(i)
            if length:
                operator(pattern[i : i + length])
                i += length
                continue
        state = "none"
        i += 1
    return problems


def sent_parameters(asl: dict) -> dict[str, dict]:
    """{state name: Parameters.Parameters} of every sendCommand.waitForTaskToken task."""
    found: dict[str, dict] = {}

    def walk(states: dict) -> None:
        for name, state in states.items():
            if state.get("Resource") == SEND_COMMAND:
                found[name] = state.get("Parameters", {}).get("Parameters", {})
            for branch in state.get("Branches", []):
                walk(branch.get("States", {}))
            if "Iterator" in state or "ItemProcessor" in state:
                walk((state.get("ItemProcessor") or state.get("Iterator")).get("States", {}))

    walk(asl.get("States", {}))
    return found


def check(document_path: str, asl_path: str) -> list[str]:
    problems: list[str] = []
    with open(document_path) as f:
        text = f.read()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return [f"{document_path}: not valid YAML: {e}"]
    with open(asl_path) as f:
        try:
            asl = json.load(f)
        except json.JSONDecodeError as e:
            return [f"{asl_path}: not valid JSON: {e}"]

    if not isinstance(doc, dict):
        return [f"{document_path}: not a mapping"]
    if str(doc.get("schemaVersion")) != "2.2":
        problems.append(f"schemaVersion is {doc.get('schemaVersion')!r}, expected '2.2'")
    params = doc.get("parameters") or {}
    steps = doc.get("mainSteps") or []
    if not isinstance(params, dict) or not params:
        problems.append("no parameters declared")
        params = {}
    platforms = {}
    for step in steps:
        cond = (step.get("precondition") or {}).get("StringEquals") or []
        if len(cond) != 2 or cond[0] != "platformType":
            problems.append(f"step {step.get('name')}: no platformType precondition")
            continue
        platforms[cond[1]] = step
        expected = {"Linux": "aws:runShellScript", "Windows": "aws:runPowerShellScript"}.get(cond[1])
        if step.get("action") != expected:
            problems.append(f"step {step.get('name')}: action {step.get('action')} for {cond[1]}, expected {expected}")
        commands = (step.get("inputs") or {}).get("runCommand") or []
        if not commands:
            problems.append(f"step {step.get('name')}: empty runCommand")
        if any("{{" in str(c) for c in commands):
            problems.append(f"step {step.get('name')}: runCommand uses a double-brace reference (use SSM_<Name> variables)")
        if cond[1] == "Linux":
            for c in commands:
                # "${A[@]}" of an empty array is an "unbound variable" under set -u in bash < 4.4
                # (Amazon Linux 2); ${A[@]+"${A[@]}"} is safe everywhere.
                for m in re.finditer(r'"\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}"', str(c)):
                    guard = "${" + m.group(1) + "[@]+"
                    if not str(c)[: m.start()].endswith(guard):
                        problems.append(f"step {step.get('name')}: {m.group(0)} fails under set -u on bash < 4.4 "
                                        f"when the array is empty; write {guard}{m.group(0)}}}")
        if not str((step.get("inputs") or {}).get("timeoutSeconds", "")).isdigit():
            problems.append(f"step {step.get('name')}: no numeric timeoutSeconds (the default is 3600 s)")
    for platform in ("Linux", "Windows"):
        if platform not in platforms:
            problems.append(f"no {platform} step")

    for name, spec in params.items():
        spec = spec or {}
        if spec.get("type") != "String":
            problems.append(f"parameter {name}: type {spec.get('type')!r}, expected String")
        if spec.get("interpolationType") != "ENV_VAR":
            problems.append(f"parameter {name}: interpolationType is not ENV_VAR")
        pattern = spec.get("allowedPattern")
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as e:
                problems.append(f"parameter {name}: allowedPattern does not compile: {e}")
                continue
            for problem in re2_problems(pattern):
                problems.append(f"parameter {name}: allowedPattern: {problem}")
            if "default" in spec and compiled.search(str(spec["default"])) is None:
                problems.append(f"parameter {name}: default {spec['default']!r} does not match allowedPattern")
            example = CONTRACT_EXAMPLE.get(name)
            if example is not None and compiled.search(example) is None:
                problems.append(f"parameter {name}: the contract's example {example!r} does not match allowedPattern")

    sends = sent_parameters(asl)
    if not sends:
        problems.append(f"{asl_path}: no {SEND_COMMAND} task")
    required = {n for n, s in params.items() if "default" not in (s or {})}
    for state, sent in sends.items():
        names = {k[:-2] if k.endswith(".$") else k for k in sent}
        for extra in sorted(names - set(params)):
            problems.append(f"state {state} sends parameter {extra}, which the document does not declare")
        for missing in sorted(required - names):
            problems.append(f"state {state} does not send required parameter {missing}")
        for key, value in sent.items():
            if key.endswith(".$"):
                if not (isinstance(value, str) and value.startswith("States.Array(")):
                    problems.append(f"state {state}: parameter {key[:-2]} must be a list of strings (States.Array(...))")
            elif not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                problems.append(f"state {state}: parameter {key} must be a list of strings")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--document", default=os.path.join(REPO, "ssm-documents", "build.yml"))
    parser.add_argument("--asl", default=os.path.join(REPO, "statemachine", "build.asl.json"))
    args = parser.parse_args(argv)
    problems = check(args.document, args.asl)
    for p in problems:
        print(f"check_document: {p}", file=sys.stderr)
    if problems:
        print(f"check_document: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_document: {os.path.relpath(args.document, REPO)} matches {os.path.relpath(args.asl, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
