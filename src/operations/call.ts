/** Call is who asks for a mutation and how, read from the request's context. */
export interface Call {
  caller: string;
  sourceIp: string;
  userAgent: string;
  requestId: string;
  idempotencyKey: string;
  /** The caller's cancellation: a synchronous operation not yet started when it fires does not start. */
  signal: AbortSignal;
}

/** SYSTEM_CALL is the reconciler's and the adopting replica's identity where no request is behind the work. */
export function systemCall(caller = "system"): Call {
  return {
    caller,
    sourceIp: "",
    userAgent: "paas-operator",
    requestId: "",
    idempotencyKey: "",
    signal: new AbortController().signal,
  };
}
