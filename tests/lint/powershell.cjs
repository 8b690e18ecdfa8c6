#!/usr/bin/env node
// Parses PowerShell with the tree-sitter-powershell grammar (web-tree-sitter, WebAssembly: works
// offline, nothing to compile) and reports what Windows PowerShell 5.1 would refuse.
//
// Input (stdin): JSON [{"name": "...", "source": "..."}]. Output (stdout): JSON
// [{"block", "name", "startLine", "problems": [{"line", "column", "message"}], "embedded": [names]}]:
// one entry per block and per generated script (block = the input block it is in, startLine =
// where the generated script starts in it, 0 for a block); lines and columns are 1-based and
// relative to that input block's source.
//
// Reported:
//   * ERROR and MISSING nodes of the grammar (syntax errors);
//   * PowerShell 7 syntax that the grammar accepts or that 5.1 does not have: the pipeline chain
//     operators && and || (the grammar parses them), and ?? / ??= / ?. / ?[ and the ternary
//     ? : (the grammar has no rule for them, so they show up as ERROR nodes: named here so
//     the message says why).
//   * Scripts a block generates: a verbatim here-string (@'...'@) whose first line is
//     "#Requires -Version 5.1" is a PowerShell script written to disk and run by 5.1; it is
//     parsed and checked like a block of its own (lines still relative to the outer block).
'use strict';

const fs = require('fs');
const path = require('path');
// Baseline-compiled WebAssembly only: V8 would otherwise optimise the grammar in the background
// and hold the process for seconds at exit, for no gain on a few kilobytes of script.
require('v8').setFlagsFromString('--liftoff-only');
const { Parser, Language } = require('web-tree-sitter');

const GENERATED_MARKER = /^#requires\s+-version\s+5\.1\b/i;

function position(node, offset) {
  return { line: node.startPosition.row + 1 + offset, column: node.startPosition.column + 1 };
}

function leaves(node, out = []) {
  if (node.childCount === 0) out.push(node);
  for (const child of node.children) leaves(child, out);
  return out;
}

// Why an ERROR node is there, when it is PowerShell 7 syntax rather than a plain error.
function ps7Reason(errorNode, following) {
  const text = errorNode.text.trimStart();
  if (text.startsWith('??')) return 'the null-coalescing operator ?? / ??= is PowerShell 7 only (not in Windows PowerShell 5.1)';
  if (text.startsWith('?.') || text.startsWith('?[')) return 'null-conditional member access ?. / ?[] is PowerShell 7 only';
  if (text.startsWith('?')) {
    const sameLine = following.filter((n) => n.startPosition.row === errorNode.startPosition.row);
    if (sameLine.some((n) => n.type === ':' || n.text.trim() === ':')) return 'the ternary operator ? : is PowerShell 7 only';
  }
  return null;
}

function check(parser, outer, name, source, offset, results, embeddedOut, startLine = 0) {
  const tree = parser.parse(source);
  const root = tree.rootNode;
  const problems = [];
  if (root.hasError) {
    // ERROR and MISSING nodes, with a cursor (node.children builds every child anew: slow).
    const cursor = tree.walk();
    let reported = false;
    for (;;) {
      const node = cursor.currentNode;
      let descend = true;
      if (node.type === 'ERROR') {
        const after = leaves(root).filter((n) => n.startIndex >= node.startIndex);
        const reason = ps7Reason(node, after.slice(0, 12));
        const snippet = node.text.split('\n')[0].trim().slice(0, 60);
        problems.push({ ...position(node, offset), message: reason || `syntax error near ${JSON.stringify(snippet)}` });
        descend = false; // one report per error region
        reported = true;
      } else if (node.isMissing) {
        problems.push({ ...position(node, offset), message: `syntax error: missing ${JSON.stringify(node.type)}` });
        reported = true;
      }
      if (descend && node.hasError && cursor.gotoFirstChild()) continue;
      let done = false;
      while (!cursor.gotoNextSibling()) {
        if (!cursor.gotoParent()) { done = true; break; }
      }
      if (done) break;
    }
    if (!reported) problems.push({ line: 1 + offset, column: 1, message: 'syntax error' });
  }
  for (const node of root.descendantsOfType(['&&', '||'])) {
    problems.push({ ...position(node, offset), message: `the pipeline chain operator ${node.type} is PowerShell 7 only (Windows PowerShell 5.1: use if ($LASTEXITCODE) / if ($?))` });
  }
  for (const node of root.descendantsOfType('verbatim_here_string_characters')) {
    // @'<newline>content<newline>'@: the content starts on the next line.
    const content = node.text.replace(/^@'\r?\n/, '').replace(/\r?\n'@$/, '');
    if (GENERATED_MARKER.test(content.split('\n')[0].trim())) {
      const start = offset + node.startPosition.row + 2; // the content's first line
      const innerName = `${name} > generated script`;
      embeddedOut.push(innerName);
      check(parser, outer, innerName, content, start - 1, results, [], start);
    }
  }
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  results.push({ block: outer, name, startLine, problems, embedded: embeddedOut });
}

async function main() {
  const blocks = JSON.parse(fs.readFileSync(0, 'utf8'));
  await Parser.init();
  const wasm = path.join(path.dirname(require.resolve('tree-sitter-powershell/package.json')), 'tree-sitter-powershell.wasm');
  const parser = new Parser();
  parser.setLanguage(await Language.load(wasm));
  const results = [];
  for (const block of blocks) check(parser, block.name, block.name, block.source, 0, results, []);
  process.stdout.write(JSON.stringify(results));
}

main().catch((e) => {
  process.stderr.write(`powershell.cjs: ${e.stack || e}\n`);
  process.exit(2);
});
