import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DOCUMENT_PATH } from "../../src/docs/docs-routes.ts";
import { startServer, type ServerProcess } from "../support/testbed.ts";

const SCREENSHOT = "/tmp/paas-operator-docs.png";
const SCREENSHOT_TOP = "/tmp/paas-operator-docs-top.png";
const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** The operations of the document, as Swagger UI lists them: "METHOD /path". */
function documentOperations(): string[] {
  const doc = JSON.parse(readFileSync(DEFAULT_DOCUMENT_PATH, "utf8")) as {
    paths: Record<string, Record<string, unknown>>;
  };
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((k) => METHODS.includes(k))
      .map((m) => `${m.toUpperCase()} ${path}`),
  );
}

// Swagger UI in headless Chromium, served by the real server (started as a child process
// against the testbed). scripts/ensure-chromium.sh installs Debian's Chromium when missing.
describe("Swagger UI at /docs in Chromium", () => {
  let server: ServerProcess;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    const executablePath = execFileSync("bash", ["scripts/ensure-chromium.sh"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
    server = await startServer();
    base = server.baseUrl;
    browser = await chromium.launch({
      executablePath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
        "--disable-quic",
      ],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("renders every operation of the document, from 127.0.0.1 only, without CSP violations", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const requests: string[] = [];
    const problems: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
    await page.goto(`${base}/docs`);

    const expected = documentOperations();
    await page.locator(".swagger-ui .info .title").waitFor();
    await expect.poll(() => page.locator(".opblock").count(), { timeout: 30_000 }).toBe(expected.length);
    await expect(page.locator(".swagger-ui .info .title").innerText()).resolves.toContain("PaaS Operator API");
    const listed = await page
      .locator(".opblock")
      .evaluateAll((blocks) =>
        blocks.map(
          (b) =>
            `${b.querySelector(".opblock-summary-method")?.textContent?.trim()} ${b.querySelector(".opblock-summary-path")?.getAttribute("data-path")}`,
        ),
      );
    expect(listed.sort()).toEqual([...expected].sort());

    // Try it out on GET /healthz: the call goes to the page's own origin and its answer is shown.
    const healthz = page.locator(".opblock", { has: page.locator('.opblock-summary-path[data-path="/healthz"]') });
    await healthz.locator(".opblock-summary").click();
    await healthz.locator("button.try-out__btn").click();
    await healthz.locator("button.execute").click();
    const status = healthz.locator(".live-responses-table tbody td.response-col_status").first();
    await status.waitFor();
    expect((await status.innerText()).trim()).toBe("200");
    await expect(
      healthz.locator(".live-responses-table tbody .response-col_description").first().innerText(),
    ).resolves.toContain('"status": "ok"');

    await page.screenshot({ path: SCREENSHOT_TOP });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(requests.filter((url) => !url.startsWith("data:") && new URL(url).hostname !== "127.0.0.1")).toEqual([]);
    expect(requests).toContain(`${base}/openapi.json`);
    expect(requests).toContain(`${base}/healthz`);
    expect(problems).toEqual([]);
    await context.close();
  });
});
