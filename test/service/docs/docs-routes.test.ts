import { readFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDocsRoutes, DEFAULT_DOCUMENT_PATH } from "../../../src/docs/docs-routes.ts";

const uiDir = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** get sends the path exactly as given (fetch would resolve "..", which is what these tests send). */
function get(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, path, method: options.method ?? "GET", headers: options.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("createDocsRoutes", () => {
  let server: Server;
  let port: number;

  beforeAll(async () => {
    const docs = createDocsRoutes();
    // 418 marks "not handled": the routes said false and left the response to the next route.
    server = createServer((req, res) => {
      if (!docs(req, res)) {
        res.statusCode = 418;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("serves the generated document at /openapi.json", async () => {
    const r = await get(port, "/openapi.json");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.body.equals(readFileSync(DEFAULT_DOCUMENT_PATH))).toBe(true);
    expect(JSON.parse(r.body.toString()).openapi).toBe("3.1.0");
  });

  it("serves Swagger UI at /docs with a self-only CSP and no inline script", async () => {
    const r = await get(port, "/docs?x=1");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/html; charset=utf-8");
    const csp = String(r.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:/);
    expect(r.headers["x-content-type-options"]).toBe("nosniff");
    const html = r.body.toString();
    expect(html).toContain("<title>PaaS Operator API</title>");
    expect(html).toContain('<script src="docs/swagger-ui-bundle.js">');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style|style=|https?:\/\//);
  });

  it("redirects /docs/ to /docs, where the page's relative paths resolve", async () => {
    const r = await get(port, "/docs/");
    expect(r.status).toBe(301);
    expect(new URL(String(r.headers.location), `http://127.0.0.1:${port}/docs/`).pathname).toBe("/docs");
  });

  for (const [name, type] of [
    ["swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
    ["swagger-ui.css", "text/css; charset=utf-8"],
    ["index.css", "text/css; charset=utf-8"],
    ["favicon-32x32.png", "image/png"],
    ["favicon-16x16.png", "image/png"],
  ] as const) {
    it(`serves /docs/${name} from swagger-ui-dist as ${type}`, async () => {
      const r = await get(port, `/docs/${name}`);
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe(type);
      expect(r.body.equals(readFileSync(join(uiDir, name)))).toBe(true);
    });
  }

  it("serves its own initializer, which loads /openapi.json and not the petstore", async () => {
    const r = await get(port, "/docs/swagger-initializer.js");
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(r.body.toString()).toContain('url: "openapi.json"');
    expect(r.body.toString()).toContain("validatorUrl: null");
  });

  it("gzips for clients that accept it, and answers 304 to a matching ETag", async () => {
    const plain = await get(port, "/docs/swagger-ui-bundle.js");
    const zipped = await get(port, "/docs/swagger-ui-bundle.js", { headers: { "accept-encoding": "gzip, br" } });
    expect(zipped.headers["content-encoding"]).toBe("gzip");
    expect(zipped.body.length).toBeLessThan(plain.body.length / 2);
    expect(gunzipSync(zipped.body).equals(plain.body)).toBe(true);
    expect(zipped.headers.etag).not.toBe(plain.headers.etag);
    const again = await get(port, "/docs/swagger-ui-bundle.js", {
      headers: { "if-none-match": String(plain.headers.etag) },
    });
    expect(again.status).toBe(304);
    expect(again.body.length).toBe(0);
  });

  it("answers HEAD with the headers only", async () => {
    const r = await get(port, "/openapi.json", { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(Number(r.headers["content-length"])).toBe(readFileSync(DEFAULT_DOCUMENT_PATH).length);
    expect(r.body.length).toBe(0);
  });

  it("refuses other methods with 405 and Allow", async () => {
    const r = await get(port, "/openapi.json", { method: "POST" });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe("GET, HEAD");
    expect(JSON.parse(r.body.toString())).toEqual({
      detail: "Method not allowed: POST /openapi.json",
      error_type: "method_not_allowed",
    });
  });

  for (const path of [
    "/docs/../package.json",
    "/docs/../../package.json",
    "/docs/..%2fpackage.json",
    "/docs/%2e%2e/%2e%2e/package.json",
    "/docs/./swagger-ui.css",
    "/docs//swagger-ui.css",
    "/docs/package.json",
    "/docs/index.html",
    "/docs/swagger-ui.js",
    "/docs/swagger-ui-bundle.js.map",
    "/docs/oauth2-redirect.html",
    "/docs/%2fetc%2fpasswd",
  ]) {
    it(`answers ${path} with a JSON 404`, async () => {
      const r = await get(port, path);
      expect(r.status).toBe(404);
      expect(r.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(r.body.toString()).error_type).toBe("not_found");
    });
  }

  for (const path of [
    "/",
    "/health",
    "/openapi.json/",
    "/openapi.jsonx",
    "/docsx",
    "/api/docs",
    "/paas.v1.ReleaseService/GetRelease",
  ]) {
    it(`leaves ${path} to the next route`, async () => {
      expect((await get(port, path)).status).toBe(418);
    });
  }

  it("fails at creation when the document is missing", () => {
    expect(() => createDocsRoutes({ documentPath: "/nonexistent/openapi.json" })).toThrow(/ENOENT/);
  });
});
