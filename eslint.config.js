import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", ".manifold/**", "bench-results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Services log through pino; console output would bypass redaction and structure.
      "no-console": "error",
      // One public surface per package: no reaching into another package's files.
      "no-restricted-imports": ["error", { patterns: ["@manifold/*/src/*", "@manifold/*/dist/*", "../../libs/*", "../../services/*"] }],
    },
  },
  {
    files: ["scripts/**", "tools/**", "test/**", "bench/**"],
    // Test code reads untyped JSON bodies of the API under test.
    rules: { "no-console": "off", "@typescript-eslint/no-explicit-any": "off" },
  },
);
