import { type Code, ConnectError } from "@connectrpc/connect";

/** failure awaits a call that must fail and returns its error as a ConnectError. */
export async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

/** codeOf awaits a call and returns "ok" or the gRPC code it failed with. */
export async function codeOf(p: Promise<unknown>): Promise<Code | "ok"> {
  try {
    await p;
    return "ok";
  } catch (err) {
    return ConnectError.from(err).code;
  }
}
