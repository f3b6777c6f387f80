/** MAX_STDERR_CHARS bounds how much helm stderr reaches the log. */
export const MAX_STDERR_CHARS = 4096;

// Each rule replaces a fragment that may carry a secret. Kubernetes validation errors
// echo offending values ("Invalid value: \"...\""), template errors may quote values, URLs
// may carry user:password, and kubeconfig/exec plugins can print tokens.
const REDACTIONS: ReadonlyArray<[RegExp, string]> = [
  // ANSI colour codes: helm v4 colours some output.
  [/\u001b\[[0-9;]*[A-Za-z]/g, ""],
  [/((?:Invalid|Unsupported|Duplicate) value:\s*)("(?:[^"\\]|\\.)*"|\S+)/g, "$1<redacted>"],
  [/(\/\/)[^/\s:@]+:[^/\s@]+@/g, "$1<redacted>@"],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 <redacted>"],
  [
    /\b(password|passwd|token|secret|api[_-]?key|authorization)(["']?\s*[:=]\s*)("(?:[^"\\]|\\.)*"|'[^']*'|\S+)/gi,
    "$1$2<redacted>",
  ],
  // Long base64 runs are Secret data, certificates or keys far more often than prose.
  [/[A-Za-z0-9+/]{48,}={0,2}/g, "<redacted>"],
];

/**
 * sanitizeStderr prepares helm's stderr for the log: secrets and secret-looking fragments
 * are replaced by <redacted> and the text is cut to MAX_STDERR_CHARS. The result still
 * never goes into an error message shown to callers, only into the log.
 */
export function sanitizeStderr(stderr: string): string {
  let text = stderr;
  for (const [pattern, replacement] of REDACTIONS) text = text.replace(pattern, replacement);
  text = text.trim();
  return text.length > MAX_STDERR_CHARS
    ? `${text.slice(0, MAX_STDERR_CHARS)}… (${text.length - MAX_STDERR_CHARS} more chars)`
    : text;
}
