import http2 from "node:http2";
import { gzipSync } from "node:zlib";
import {
  create,
  fromBinary,
  fromJsonString,
  ScalarType,
  toBinary,
  toJsonString,
  type DescMessage,
  type DescMethod,
  type DescService,
} from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditService } from "../../../gen/paas/v1/audit_pb.js";
import { NamespaceService } from "../../../gen/paas/v1/namespace_pb.js";
import { ReleaseService } from "../../../gen/paas/v1/release_pb.js";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { listen, type Listener } from "../../../src/server/listener.ts";
import { API_KEY, createHarness, managedNamespace } from "../../support/harness.ts";

// Every decoder of the served unary methods gets random and truncated bytes over Connect
// (proto and JSON), gRPC-Web (binary) and gRPC (HTTP/2). Bad input is the caller's: no answer
// may be a 5xx or INTERNAL / UNKNOWN / UNIMPLEMENTED, and a body that cannot be decoded (as
// @bufbuild/protobuf itself decides) must be INVALID_ARGUMENT. The PRNG is seeded: a failure
// names the seed, the protocol, the method and the bytes, and reproduces.
const SEED = Number(process.env.FUZZ_SEED ?? 20261204);
const PER_METHOD = 20;

const NS = "paas-ws-fuzz";
let server: Listener;
let h: Awaited<ReturnType<typeof createHarness>>;
let base: string;
let h2: http2.ClientHttp2Session;

beforeAll(async () => {
  h = await createHarness();
  managedNamespace(h.cluster, NS);
  server = await listen(h.app.handler, "127.0.0.1", 0);
  base = `http://127.0.0.1:${server.port}`;
  h2 = http2.connect(base);
});

afterAll(() => {
  h2.close();
  server.drain();
  server.stopAccepting();
  server.closeAll();
});

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const unary: DescMethod[] = ([ReleaseService, NamespaceService, AuditService, Health] as DescService[]).flatMap((s) =>
  s.methods.filter((m) => m.methodKind === "unary"),
);

/** sample is a plausible request: every string field set, numbers and booleans too. */
function sample(desc: DescMessage): Uint8Array {
  const msg = create(desc) as unknown as Record<string, unknown>;
  for (const f of desc.fields) {
    if (f.fieldKind !== "scalar") continue;
    if (f.scalar === ScalarType.STRING) msg[f.localName] = f.name === "namespace" ? NS : "fuzz-value";
    else if (f.scalar === ScalarType.BOOL) msg[f.localName] = true;
    else if (f.scalar === ScalarType.INT32 || f.scalar === ScalarType.UINT32) msg[f.localName] = 7;
  }
  return toBinary(desc, msg as never);
}

function randomBytes(rnd: () => number, max: number): Uint8Array {
  const out = new Uint8Array(1 + Math.floor(rnd() * max));
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rnd() * 256);
  return out;
}

/** badBinary: random bytes, a truncated or corrupted sample, invalid UTF-8 in a string, a field with a lying length. */
function badBinary(rnd: () => number, desc: DescMessage): Uint8Array {
  const valid = sample(desc);
  switch (Math.floor(rnd() * 5)) {
    case 0:
      return randomBytes(rnd, 64);
    case 1:
      return valid.length > 1 ? valid.subarray(0, 1 + Math.floor(rnd() * (valid.length - 1))) : randomBytes(rnd, 8);
    case 2: {
      const out = Uint8Array.from(valid.length > 0 ? valid : [0x0a, 0x01, 0x61]);
      out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256);
      return out;
    }
    case 3:
      return Uint8Array.from([0x0a, 0x03, 0xff, 0xfe, 0xfd]); // field 1, length 3, not UTF-8
    default:
      return Uint8Array.from([0x0a, 0x7f, 0x61, 0x62]); // field 1 promises 127 bytes, has 2
  }
}

function badJson(rnd: () => number, desc: DescMessage): Uint8Array {
  const text = toJsonString(desc, fromBinary(desc, sample(desc)));
  switch (Math.floor(rnd() * 3)) {
    case 0:
      return randomBytes(rnd, 64);
    case 1:
      return new TextEncoder().encode(text.slice(0, Math.floor(rnd() * text.length)));
    default:
      return new TextEncoder().encode(`${text.slice(0, -1)},"${String.fromCharCode(97 + Math.floor(rnd() * 26))}":[}`);
  }
}

function envelope(flags: number, payload: Uint8Array, declared = payload.length): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, declared);
  out[0] = flags;
  out.set(payload, 5);
  return out;
}

interface Case {
  body: Uint8Array;
  headers: Record<string, string>;
  /** The server cannot decode it (as @bufbuild/protobuf or the envelope rules decide). */
  undecodable: boolean;
}

function decodes(desc: DescMessage, bytes: Uint8Array): boolean {
  try {
    fromBinary(desc, bytes);
    return true;
  } catch {
    return false;
  }
}

/** enveloped: a bad message in a good envelope, or a bad envelope (compressed flag without an encoding, a lying length, none, two, gzip that does not inflate). */
function enveloped(rnd: () => number, desc: DescMessage, contentType: string): Case {
  const headers = { "content-type": contentType };
  const payload = badBinary(rnd, desc);
  switch (Math.floor(rnd() * 7)) {
    case 0:
      return { body: envelope(1, payload), headers, undecodable: true };
    case 1:
      return { body: envelope(0, payload, payload.length + 1 + Math.floor(rnd() * 100)), headers, undecodable: true };
    case 2:
      return { body: new Uint8Array(0), headers, undecodable: true };
    case 3:
      return { body: randomBytes(rnd, 4), headers, undecodable: true };
    case 4: {
      const one = envelope(0, sample(desc));
      return { body: Buffer.concat([one, one]), headers, undecodable: true };
    }
    case 5: {
      const gz = gzipSync(sample(desc));
      return {
        body: envelope(1, gz.subarray(0, Math.max(1, Math.floor(gz.length / 2)))),
        headers: { ...headers, "grpc-encoding": "gzip" },
        undecodable: true,
      };
    }
    default:
      return { body: envelope(0, payload), headers, undecodable: !decodes(desc, payload) };
  }
}

type Protocol = "connect-proto" | "connect-json" | "grpc-web" | "grpc";

function caseFor(protocol: Protocol, rnd: () => number, desc: DescMessage): Case {
  switch (protocol) {
    case "connect-proto": {
      if (rnd() < 0.15) {
        const gz = gzipSync(sample(desc));
        return {
          body: gz.subarray(0, Math.max(1, Math.floor(gz.length / 2))),
          headers: { "content-type": "application/proto", "content-encoding": "gzip" },
          undecodable: true,
        };
      }
      const body = badBinary(rnd, desc);
      return { body, headers: { "content-type": "application/proto" }, undecodable: !decodes(desc, body) };
    }
    case "connect-json": {
      const body = badJson(rnd, desc);
      let ok = true;
      try {
        fromJsonString(desc, new TextDecoder("utf-8", { fatal: true }).decode(body));
      } catch {
        ok = false;
      }
      return { body, headers: { "content-type": "application/json" }, undecodable: !ok };
    }
    case "grpc-web":
      return enveloped(rnd, desc, "application/grpc-web+proto");
    case "grpc":
      return enveloped(rnd, desc, "application/grpc");
  }
}

/** Answer: the HTTP status and the RPC code as gRPC numbers it (Connect codes are mapped). */
interface Answer {
  status: number;
  code: number;
  message: string;
}

const CONNECT_CODES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

async function send(protocol: Protocol, path: string, c: Case): Promise<Answer> {
  if (protocol === "grpc") return sendH2(path, c);
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { ...c.headers, "x-api-key": API_KEY },
    body: c.body,
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (protocol === "grpc-web") {
    // Trailers-only in the headers, or the trailer frame (flag 0x80) at the end of the body.
    let trailer = "";
    for (let at = 0; at + 5 <= bytes.length;) {
      const len = bytes.readUInt32BE(at + 1);
      if (bytes[at]! & 0x80) trailer = bytes.subarray(at + 5, at + 5 + len).toString();
      at += 5 + len;
    }
    const status = res.headers.get("grpc-status") ?? /grpc-status: ?(\d+)/i.exec(trailer)?.[1];
    const message = res.headers.get("grpc-message") ?? /grpc-message: ?(.*)/i.exec(trailer)?.[1] ?? "";
    return { status: res.status, code: Number(status ?? -1), message: decodeURIComponent(message.trim()) };
  }
  if (res.status === 200) return { status: 200, code: 0, message: "" };
  const body = JSON.parse(bytes.toString()) as { code: string; message?: string };
  return { status: res.status, code: CONNECT_CODES.indexOf(body.code), message: body.message ?? "" };
}

function sendH2(path: string, c: Case): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = h2.request({ ":method": "POST", ":path": path, te: "trailers", "x-api-key": API_KEY, ...c.headers });
    let status = 0;
    let grpc: { code?: string; message?: string } = {};
    const read = (hs: http2.IncomingHttpHeaders) => {
      if (hs["grpc-status"] !== undefined)
        grpc = { code: String(hs["grpc-status"]), message: String(hs["grpc-message"] ?? "") };
    };
    req.on("response", (hs) => {
      status = Number(hs[":status"]);
      read(hs);
    });
    req.on("trailers", read);
    req.on("data", () => {});
    req.on("end", () =>
      resolve({ status, code: Number(grpc.code ?? -1), message: decodeURIComponent(grpc.message ?? "") }),
    );
    req.on("error", reject);
    req.end(Buffer.from(c.body));
  });
}

const GRPC_INVALID_ARGUMENT = 3;
const SERVER_FAULTS = new Set([2 /* UNKNOWN */, 12 /* UNIMPLEMENTED */, 13 /* INTERNAL */, -1 /* no status */]);

describe(`bad request bytes to every unary method (seed ${SEED})`, () => {
  it("are never a server fault, and undecodable ones are INVALID_ARGUMENT", async () => {
    const rnd = prng(SEED);
    const protocols: Protocol[] = ["connect-proto", "connect-json", "grpc-web", "grpc"];
    const jobs: Array<{ protocol: Protocol; path: string; c: Case }> = [];
    for (const protocol of protocols) {
      for (const m of unary) {
        for (let i = 0; i < PER_METHOD; i++)
          jobs.push({ protocol, path: `/${m.parent.typeName}/${m.name}`, c: caseFor(protocol, rnd, m.input) });
      }
    }
    expect(jobs.length).toBeGreaterThanOrEqual(1000);
    const failures: string[] = [];
    const codes = new Map<string, number>();
    // A few at a time: the machine is shared.
    for (let at = 0; at < jobs.length; at += 16) {
      await Promise.all(
        jobs.slice(at, at + 16).map(async ({ protocol, path, c }) => {
          const a = await send(protocol, path, c);
          codes.set(`${protocol} ${a.code}`, (codes.get(`${protocol} ${a.code}`) ?? 0) + 1);
          const bad =
            a.status >= 500 || SERVER_FAULTS.has(a.code) || (c.undecodable && a.code !== GRPC_INVALID_ARGUMENT);
          if (bad)
            failures.push(
              `${protocol} ${path} ${JSON.stringify(c.headers)} body=${Buffer.from(c.body).toString("hex").slice(0, 120)} → HTTP ${a.status} code ${a.code} ${a.message}`,
            );
        }),
      );
    }
    expect(failures.slice(0, 10), `${failures.length} of ${jobs.length} failed`).toEqual([]);
    // The decoders were reached: most answers are INVALID_ARGUMENT, on every protocol.
    for (const p of protocols)
      expect(codes.get(`${p} ${GRPC_INVALID_ARGUMENT}`) ?? 0).toBeGreaterThan(PER_METHOD * unary.length * 0.5);
    // Nothing was installed or upgraded (a decodable, truncated uninstall of a release that
    // does not exist may reach helm, and fails there).
    expect(h.helm.verbs().filter((v) => v === "install" || v === "upgrade")).toEqual([]);
  }, 120_000);
});
