// ESLint flat config: ESLint's and typescript-eslint's recommended rules (no type-aware rules,
// so a lint run needs no type check; `tsc` does that). Formatting is Prettier's, not ESLint's.
import js from "@eslint/js";
import { defineConfig, globalIgnores } from "eslint/config";
import globals from "globals";
import tseslint from "typescript-eslint";

export default defineConfig(
  globalIgnores(["gen/", "clients/*/gen/", "clients/typescript/dist/", "node_modules/", "coverage/", ".testbed/"]),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // Off: the regexes that name control characters (argument and URL checks, ANSI stripping) do so on purpose.
      "no-control-regex": "off",
      // A leading underscore marks a parameter kept for the signature, as tsc's noUnusedParameters
      // allows, and a loop variable that only drives the iteration (`for await (const _ of stream)`).
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      // Off in tests only: they walk parsed JSON/YAML documents (OpenAPI, manifests, API bodies) of loose shape.
      "@typescript-eslint/no-explicit-any": "off",
    },
  },
  {
    // The fake helm is a Node script without an extension.
    files: ["test/fixtures/bin/helm"],
  },
);
