import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Reading the project's Markdown documents (README.md, src/rest/README.md) as tests see them:
// fenced code blocks, the shell commands in them, inline code, links and heading anchors.

export const REPO = fileURLToPath(new URL("../..", import.meta.url));

/** The documents whose commands and references the tests check, relative to the repository. */
export const DOCUMENTS = ["README.md", "src/rest/README.md"] as const;

/** FencedBlock is one ``` block: its info string's first word and its text. */
export interface FencedBlock {
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  text: string;
}

/** readDocument returns a document's text (path relative to the repository). */
export function readDocument(file: string): string {
  return readFileSync(join(REPO, file), "utf8");
}

/** fencedBlocks returns every fenced code block (``` or ~~~, any indentation up to 3 spaces). */
export function fencedBlocks(file: string, text: string): FencedBlock[] {
  const lines = text.split("\n");
  const blocks: FencedBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`);
      if (close.test(lines[j]!)) break;
      body.push(lines[j]!);
    }
    blocks.push({ file, line: i + 1, lang: open[2]!.toLowerCase(), text: body.join("\n") });
    i = j;
  }
  return blocks;
}

/** withoutFencedBlocks returns the text with every fenced block's lines blanked (prose only). */
export function withoutFencedBlocks(file: string, text: string): string {
  const lines = text.split("\n");
  for (const b of fencedBlocks(file, text)) {
    const n = b.text === "" ? 0 : b.text.split("\n").length;
    for (let k = b.line - 1; k <= b.line + n && k < lines.length; k++) lines[k] = "";
  }
  return lines.join("\n");
}

/** ShellCommand is one complete command of a shell block. */
export interface ShellCommand {
  file: string;
  /** 1-based line in the document where the command starts. */
  line: number;
  text: string;
}

function bashParses(script: string): boolean {
  // bash accepts a heredoc that runs to the end of the input (with a warning): not complete.
  for (const m of script.matchAll(/(?<!<)<<(?!<)-?\s*(['"]?)(\w+)\1/g)) {
    if (!script.split("\n").some((l, i) => i > 0 && l.replace(/^\t+/, "") === m[2])) return false;
  }
  return spawnSync("bash", ["-n"], { input: script, encoding: "utf8" }).status === 0;
}

/**
 * shellCommands splits a shell block into complete commands: lines joined while they end in a
 * backslash, and further lines added while bash cannot parse what is there yet (an open quote,
 * heredoc, loop or function), so blocks added later with such constructs still split right.
 * Blank lines and comment lines between commands are dropped.
 */
export function shellCommands(block: FencedBlock): ShellCommand[] {
  const lines = block.text.split("\n");
  const out: ShellCommand[] = [];
  let start = -1;
  let current = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (start < 0) {
      if (line.trim() === "" || line.trim().startsWith("#")) continue;
      start = i;
      current = line;
    } else {
      current += "\n" + line;
    }
    if (/\\\s*$/.test(line) && i + 1 < lines.length) continue;
    if (!bashParses(current) && i + 1 < lines.length) continue;
    out.push({ file: block.file, line: block.line + 1 + start, text: current.trim() });
    start = -1;
    current = "";
  }
  if (start >= 0) out.push({ file: block.file, line: block.line + 1 + start, text: current.trim() });
  return out;
}

/** inlineCode returns the text of every `code span` outside fenced blocks. */
export function inlineCode(file: string, text: string): string[] {
  const prose = withoutFencedBlocks(file, text);
  const spans: string[] = [];
  // A code span: a run of N backticks, anything, the same run of N backticks.
  for (const m of prose.matchAll(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g)) spans.push(m[2]!.trim());
  return spans;
}

/** Link is a Markdown link [text](target) outside fenced blocks and code spans. */
export interface Link {
  text: string;
  target: string;
}

/** links returns every inline Markdown link of the prose. */
export function links(file: string, text: string): Link[] {
  const prose = withoutFencedBlocks(file, text);
  const out: Link[] = [];
  for (const m of prose.matchAll(/\[((?:[^\][]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    out.push({ text: m[1]!, target: m[2]! });
  }
  return out;
}

/** headingAnchors returns the anchors GitHub gives the document's headings. */
export function headingAnchors(file: string, text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of withoutFencedBlocks(file, text).split("\n")) {
    const h = /^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const slug = h[1]!
      .toLowerCase()
      .replace(/`/g, "")
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}
