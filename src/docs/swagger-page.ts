/**
 * The Swagger UI page at /docs: HTML and an initializer script of our own, the rest from the
 * swagger-ui-dist package. Everything is same-origin, so the CSP allows only 'self'.
 */

/**
 * DOCS_CSP is the Content-Security-Policy of every docs response. No inline script or style
 * element is needed: the page loads its script from a file, and Swagger UI (React) sets styles
 * through the DOM, which style-src does not govern. swagger-ui.css draws a few icons from data:
 * URIs, hence img-src data:. connect-src 'self' covers fetching /openapi.json and "Try it out".
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** docsHtml is the page at /docs; asset paths are relative, so the page also works under a path prefix. */
export function docsHtml(title: string): string {
  return `<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>${escapeHtml(title)}</title>
    <link rel="stylesheet" href="docs/swagger-ui.css">
    <link rel="stylesheet" href="docs/index.css">
    <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
    <link rel="icon" type="image/png" href="docs/favicon-16x16.png" sizes="16x16">
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="docs/swagger-ui-bundle.js"></script>
    <script src="docs/swagger-initializer.js"></script>
  </body>
</html>
`;
}

/**
 * INITIALIZER_JS starts Swagger UI on the document. validatorUrl null: the default sends the
 * document to validator.swagger.io for a badge. No standalone preset: its top bar lets a
 * visitor load any URL into the page.
 */
export const INITIALIZER_JS = `window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
