import { PaasError } from "../errors.ts";

/**
 * assertArg rejects a value that helm could read as a flag or that is empty. Names are
 * validated upstream, but an argv is built here, so this is the last line of defence
 * against option injection ("--kubeconfig=/etc/...") through a positional argument.
 */
export function assertArg(what: string, value: string): string {
  if (value.length === 0) throw new PaasError("invalid_argument", `${what} must not be empty`);
  if (value.startsWith("-")) throw new PaasError("invalid_argument", `${what} must not start with "-"`);
  // Control characters have no business in names or URLs and would garble the log.
  if (/[\u0000-\u001f\u007f]/.test(value))
    throw new PaasError("invalid_argument", `${what} contains control characters`);
  return value;
}

/** assertTimeout checks that a helm --timeout is a positive, finite number of seconds. */
export function assertTimeout(seconds: number): number {
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new PaasError("invalid_argument", "timeout must be a positive number of seconds");
  }
  return Math.ceil(seconds);
}
