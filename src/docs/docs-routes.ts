import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { DOCS_CSP, docsHtml, INITIALIZER_JS } from "./swagger-page.ts";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
type Req = Parameters<NodeHandler>[0];
type Res = Parameters<NodeHandler>[1];

/** DocsRoutes answers a request for the API documentation and returns true, or returns false for any other path. */
export type DocsRoutes = (req: Req, res: Res) => boolean;

/** DocsOptions locate the files served; the defaults are the generated document and the installed swagger-ui-dist. */
export interface DocsOptions {
  /** The OpenAPI document; default gen/openapi/openapi.json of this checkout. */
  documentPath?: string;
  /** The swagger-ui-dist package folder; default resolved from node_modules. */
  swaggerUiDir?: string;
}

/** DEFAULT_DOCUMENT_PATH is the document `buf generate` writes (scripts/openapi/). */
export const DEFAULT_DOCUMENT_PATH = fileURLToPath(new URL("../../gen/openapi/openapi.json", import.meta.url));

/** The only files of swagger-ui-dist ever read: a fixed list, so no request path reaches the file system. */
const SWAGGER_UI_FILES: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "index.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
  "favicon-16x16.png": "image/png",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  gzipped?: Buffer;
}

/**
 * createDocsRoutes serves, without an API key, GET/HEAD /openapi.json (the generated document),
 * /docs (Swagger UI) and the page's assets under /docs/. Every file is read once, here, so a
 * missing one fails at start. Other paths under /docs/ get a JSON 404; paths outside these return
 * false, for the caller's next route.
 */
export function createDocsRoutes(options: DocsOptions = {}): DocsRoutes {
  const documentText = readFileSync(options.documentPath ?? DEFAULT_DOCUMENT_PATH);
  const document = JSON.parse(documentText.toString("utf8")) as { info?: { title?: string } };
  const uiDir = options.swaggerUiDir ?? dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

  const assets = new Map<string, Asset>();
  const add = (path: string, body: Buffer, type: string) =>
    assets.set(path, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` });
  add("/openapi.json", documentText, "application/json");
  add("/docs", Buffer.from(docsHtml(document.info?.title ?? "API")), "text/html; charset=utf-8");
  add("/docs/swagger-initializer.js", Buffer.from(INITIALIZER_JS), "text/javascript; charset=utf-8");
  for (const [name, type] of Object.entries(SWAGGER_UI_FILES))
    add(`/docs/${name}`, readFileSync(join(uiDir, name)), type);

  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/docs/") {
      // Relative asset paths resolve against /docs, not /docs/.
      res.statusCode = 301;
      res.setHeader("location", "../docs");
      res.end();
      return true;
    }
    const asset = assets.get(path);
    if (asset === undefined) {
      if (!path.startsWith("/docs/")) return false;
      sendError(res, 404, `Not found: ${path.slice(0, 200)}`, "not_found");
      return true;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendError(res, 405, `Method not allowed: ${req.method} ${path}`, "method_not_allowed");
      return true;
    }
    send(req, res, asset);
    return true;
  };
}

/** send writes an asset, gzipped when the client takes it, 304 when the client has it. */
function send(req: Req, res: Res, asset: Asset): void {
  const gzip =
    asset.body.length > 1024 &&
    asset.type !== "image/png" &&
    /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
  const etag = gzip ? `${asset.etag.slice(0, -1)}-gz"` : asset.etag;
  res.setHeader("content-type", asset.type);
  res.setHeader("etag", etag);
  res.setHeader("vary", "accept-encoding");
  // Revalidate every time: the files change with the server, and the ETag makes it cheap.
  res.setHeader("cache-control", "no-cache");
  res.setHeader("x-content-type-options", "nosniff");
  res.setHeader("content-security-policy", DOCS_CSP);
  res.setHeader("referrer-policy", "no-referrer");
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifNoneMatch !== undefined && ifNoneMatch.split(",").some((t) => t.trim() === etag)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  const body = gzip ? (asset.gzipped ??= gzipSync(asset.body)) : asset.body;
  if (gzip) res.setHeader("content-encoding", "gzip");
  res.statusCode = 200;
  res.setHeader("content-length", body.length);
  if (req.method === "HEAD") res.end();
  else res.end(body);
}

/** sendError writes the REST error shape ({detail, error_type}) that the rest of the server uses. */
function sendError(res: Res, status: number, detail: string, errorType: string): void {
  const text = JSON.stringify({ detail, error_type: errorType });
  res.statusCode = status;
  res.setHeader("content-type", "application/json");
  res.setHeader("content-length", Buffer.byteLength(text));
  res.setHeader("cache-control", "no-store");
  res.end(text);
}
