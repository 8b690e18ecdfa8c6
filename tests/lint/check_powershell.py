#!/usr/bin/env python3
r"""Parses every PowerShell block the project ships with a real PowerShell grammar (run by `make lint`).

PowerShell cannot be installed on the development machines, so this is the check the Windows
code gets before it reaches AWS. The blocks:

  * the Windows step of the SSM build document (ssm-documents/build.yml, aws:runPowerShellScript);
  * every ExecutePowerShell step of the Image Builder components (cloudformation/*.yml,
    AWS::ImageBuilder::Component Data, a YAML document inside the template);
  * every <powershell>...</powershell> user data script (the Windows launch template);
  * the scripts these write to disk and run: a verbatim here-string (@'...'@) whose first line
    is `#Requires -Version 5.1` (the marker makes a generated script declare the PowerShell it
    runs on, and makes this lint find it).

CloudFormation `Fn::Sub` variables are replaced first (parameters by their defaults, anything
else by a sample value), so the text parsed is the text deployed.

Each block is parsed with tree-sitter-powershell (tests/lint/powershell.cjs, npm packages
pinned in package.json) and fails the lint on any ERROR or MISSING node, and on PowerShell 7
syntax that Windows PowerShell 5.1 (what aws:runPowerShellScript, Image Builder and EC2Launch
run) does not have: `&&`, `||`, `??`, `??=`, `?.`, `?[]`, the ternary `? :`.

It also checks that the Linux and the Windows step of the build document have the same
numbered sections (`# ---- N. name` lines) in the same order.

Usage: check_powershell.py [--document PATH] [--template PATH ...] [--list]. Exit status 1 with
one `file:line:column: block: problem` line per problem.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARSER = os.path.join(REPO, "tests", "lint", "powershell.cjs")
SECTION = re.compile(r"^\s*# -{10,} (\d+)\. (.+?)\s*$")
SUB_VARIABLE = re.compile(r"\$\{(!?)([A-Za-z0-9_:.]+)\}")
SAMPLE_PSEUDO = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws",
                 "AWS::StackName": "ec2-build", "AWS::URLSuffix": "amazonaws.com"}


@dataclass
class Block:
    """A PowerShell script: its text, and the file line (1-based) of each of its lines."""
    name: str
    path: str
    source: str
    lines: list[int] = field(default_factory=list)
    not_text: list[int] = field(default_factory=list)  # file lines of entries that are not strings

    def file_line(self, line: int) -> int:
        if 1 <= line <= len(self.lines):
            return self.lines[line - 1]
        return self.lines[-1] if self.lines else 0


def _content_start(node: yaml.Node) -> int:
    """0-based file line of a scalar's first content line (block scalars start after the indicator)."""
    style = getattr(node, "style", None)
    return node.start_mark.line + (1 if style in ("|", ">") else 0)


def _join(name: str, path: str, nodes: list[yaml.ScalarNode], base: int = 0, text_of=None) -> Block:
    """One script from scalar nodes run one after the other (an agent writes each entry on its own line)."""
    texts, lines = [], []
    for node in nodes:
        text = text_of(node) if text_of else node.value
        text = text[:-1] if text.endswith("\n") else text
        start = base + _content_start(node)
        for i, _ in enumerate(text.split("\n")):
            lines.append(start + i + 1)
        texts.append(text)
    return Block(name, path, "\n".join(texts), lines)


def _mapping_get(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def document_blocks(path: str) -> tuple[list[Block], dict[str, list[str]]]:
    """The PowerShell steps of an SSM document, and every step's section titles by platform."""
    with open(path) as f:
        root = yaml.compose(f, Loader=yaml.SafeLoader)
    blocks, sections = [], {}
    steps = _mapping_get(root, "mainSteps")
    for step in (steps.value if isinstance(steps, yaml.SequenceNode) else []):
        name = _mapping_get(step, "name")
        action = _mapping_get(step, "action")
        commands = _mapping_get(_mapping_get(step, "inputs"), "runCommand")
        if not isinstance(commands, yaml.SequenceNode):
            continue
        block = _join(f"step {name.value if name else '?'}", path, [c for c in commands.value if isinstance(c, yaml.ScalarNode)])
        block.not_text = [c.start_mark.line + 1 for c in commands.value if not isinstance(c, yaml.ScalarNode)]
        platform = "Windows" if action is not None and action.value == "aws:runPowerShellScript" else "Linux"
        sections[platform] = [m.group(2) for m in map(SECTION.match, block.source.split("\n")) if m]
        if platform == "Windows":
            blocks.append(block)
    return blocks, sections


def _parameter_defaults(root: yaml.Node) -> dict[str, str]:
    out = {}
    params = _mapping_get(root, "Parameters")
    for k, v in (params.value if isinstance(params, yaml.MappingNode) else []):
        default = _mapping_get(v, "Default")
        out[k.value] = default.value if isinstance(default, yaml.ScalarNode) else "sample"
    return out


def _substitute(text: str, defaults: dict[str, str]) -> str:
    """The text Fn::Sub would produce (parameters at their defaults, other variables sampled)."""
    def repl(m: re.Match) -> str:
        if m.group(1):  # ${!Literal} stays ${Literal}
            return "${" + m.group(2) + "}"
        name = m.group(2)
        return defaults.get(name, SAMPLE_PSEUDO.get(name, "sample"))
    return SUB_VARIABLE.sub(repl, text)


def _sub_text(node: yaml.Node, defaults: dict[str, str]) -> tuple[yaml.ScalarNode, str] | None:
    """A string property: plain, `!Sub text`, `Fn::Sub: text` or `!Sub [text, {...}]`."""
    if isinstance(node, yaml.ScalarNode):
        return node, (_substitute(node.value, defaults) if node.tag == "!Sub" else node.value)
    sub = _mapping_get(node, "Fn::Sub")
    if isinstance(sub, yaml.ScalarNode):
        return sub, _substitute(sub.value, defaults)
    if isinstance(node, yaml.SequenceNode) and node.tag == "!Sub" and node.value and isinstance(node.value[0], yaml.ScalarNode):
        return node.value[0], _substitute(node.value[0].value, defaults)
    return None


def template_blocks(path: str) -> list[Block]:
    """Image Builder ExecutePowerShell steps and <powershell> user data of a CloudFormation template."""
    with open(path) as f:
        root = yaml.compose(f, Loader=yaml.SafeLoader)
    defaults = _parameter_defaults(root)
    blocks: list[Block] = []
    resources = _mapping_get(root, "Resources")
    for rname, res in (resources.value if isinstance(resources, yaml.MappingNode) else []):
        rtype = _mapping_get(res, "Type")
        props = _mapping_get(res, "Properties")
        if rtype is not None and rtype.value == "AWS::ImageBuilder::Component":
            found = _sub_text(_mapping_get(props, "Data"), defaults) if props is not None else None
            if found:
                data_node, data = found
                blocks += _component_blocks(rname.value, path, data, _content_start(data_node))
        blocks += _user_data_blocks(rname.value, path, res, defaults)
    return blocks


def _component_blocks(resource: str, path: str, data: str, base: int) -> list[Block]:
    inner = yaml.compose(data, Loader=yaml.SafeLoader)
    blocks = []
    phases = _mapping_get(inner, "phases")
    for phase in (phases.value if isinstance(phases, yaml.SequenceNode) else []):
        steps = _mapping_get(phase, "steps")
        for step in (steps.value if isinstance(steps, yaml.SequenceNode) else []):
            action = _mapping_get(step, "action")
            if action is None or action.value != "ExecutePowerShell":
                continue
            commands = _mapping_get(_mapping_get(step, "inputs"), "commands")
            if isinstance(commands, yaml.SequenceNode):
                name = f"{resource} {_mapping_get(phase, 'name').value}/{_mapping_get(step, 'name').value}"
                blocks.append(_join(name, path, [c for c in commands.value if isinstance(c, yaml.ScalarNode)], base))
                for c in commands.value:
                    if not isinstance(c, yaml.ScalarNode):
                        # e.g. a plain scalar with ': ' in it, which YAML reads as a mapping.
                        blocks[-1].not_text.append(base + c.start_mark.line + 1)
    return blocks


def _user_data_blocks(resource: str, path: str, node: yaml.Node, defaults: dict[str, str]) -> list[Block]:
    """Every <powershell>...</powershell> in a string of the resource (user data, wherever it sits)."""
    blocks = []
    stack = [node]
    while stack:
        n = stack.pop()
        found = _sub_text(n, defaults) if isinstance(n, yaml.ScalarNode) or _mapping_get(n, "Fn::Sub") else None
        if found and "<powershell>" in found[1]:
            scalar, text = found
            first = _content_start(scalar)
            for m in re.finditer(r"<powershell>\n?(.*?)</powershell>", text, re.S):
                start_line = text[: m.start(1)].count("\n")
                body = m.group(1).rstrip("\n")
                lines = [first + start_line + i + 1 for i in range(len(body.split("\n")))]
                blocks.append(Block(f"{resource} user data", path, body, lines))
            continue
        if isinstance(n, yaml.MappingNode):
            stack += [v for _, v in n.value]
        elif isinstance(n, yaml.SequenceNode):
            stack += list(n.value)
    return blocks


def parse(blocks: list[Block]) -> list[dict]:
    """Runs the tree-sitter parser (Node) on the blocks."""
    payload = json.dumps([{"name": b.name, "source": b.source} for b in blocks])
    r = subprocess.run(["node", PARSER], input=payload, capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise SystemExit(f"check_powershell: the parser failed (did `npm ci` run?): {r.stderr.strip()}")
    return json.loads(r.stdout)


def check(document: str, templates: list[str]) -> tuple[list[str], list[str]]:
    """(problems, names of the scripts parsed)."""
    problems: list[str] = []
    try:
        blocks, sections = document_blocks(document)
        for t in templates:
            blocks += template_blocks(t)
    except yaml.YAMLError as e:
        return [f"not valid YAML: {e}"], []
    by_name = {b.name: b for b in blocks}
    for b in blocks:
        for line in b.not_text:
            problems.append(f"{os.path.relpath(b.path, REPO)}:{line}: {b.name}: this command is not a string for YAML "
                            "(a plain scalar holding ': ' or starting with a YAML indicator): quote it")
    results = parse(blocks)
    names = []
    for result in results:
        block = by_name[result["block"]]
        where = os.path.relpath(block.path, REPO)
        name = result["name"]
        if result["startLine"]:
            name = f"{block.name} > script generated at {where}:{block.file_line(result['startLine'])}"
        names.append(name)
        for p in result["problems"]:
            problems.append(f"{where}:{block.file_line(p['line'])}:{p['column']}: {name}: {p['message']}")
    linux, windows = sections.get("Linux", []), sections.get("Windows", [])
    if not linux or not windows:
        problems.append(f"{os.path.relpath(document, REPO)}: no numbered sections ('# ---- N. name') in the "
                        f"{'Linux' if not linux else 'Windows'} step")
    elif linux != windows:
        problems.append(f"{os.path.relpath(document, REPO)}: the Linux and Windows steps' sections differ: "
                        f"Linux {linux}, Windows {windows}")
    return problems, names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--document", default=os.path.join(REPO, "ssm-documents", "build.yml"))
    parser.add_argument("--template", action="append", help="CloudFormation template (default: cloudformation/*.yml)")
    parser.add_argument("--list", action="store_true", help="print the name of every script parsed")
    args = parser.parse_args(argv)
    templates = args.template or sorted(glob.glob(os.path.join(REPO, "cloudformation", "*.yml")))
    problems, names = check(args.document, templates)
    if args.list:
        for n in names:
            print(n)
    for p in problems:
        print(f"check_powershell: {p}", file=sys.stderr)
    if problems:
        print(f"check_powershell: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_powershell: {len(names)} PowerShell scripts parse as Windows PowerShell 5.1; "
          "the Linux and Windows steps have the same sections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
