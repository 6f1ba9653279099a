import { describe, expect, test } from "vitest";
import { stdioPolicy } from "./stdioPolicy.js";
import { stdioWarnings } from "./stdioWarnings.js";

const warningsFor = (...entries: string[][]) => stdioWarnings(stdioPolicy({ MANIFOLD_STDIO_COMMANDS: entries }));

describe("what an operator hears about MANIFOLD_STDIO_COMMANDS", () => {
  test("an entry pinned only to a launcher, interpreter, wrapper or container runtime", () => {
    for (const entry of [
      ["/usr/bin/npx", "-y"],
      ["/usr/bin/node"],
      ["/usr/bin/node", "--max-old-space-size", "4096"],
      ["/usr/bin/nodejs"],
      ["/usr/bin/python3.12", "-u"],
      ["/usr/bin/python3", "-W", "ignore"],
      ["/usr/bin/env"],
      ["/usr/bin/env", "node"],
      ["/usr/bin/env", "/usr/bin/npx", "-y"],
      ["/usr/bin/sudo", "-u", "mcp"],
      ["/usr/bin/timeout", "60"],
      ["/usr/bin/nice", "-n", "10", "/usr/bin/python3"],
      ["/usr/bin/npm", "install"],
      ["/usr/bin/pnpm"],
      ["/usr/local/bin/uv", "run"],
      ["/usr/bin/deno", "run", "-A"],
      ["/usr/bin/java", "-Xmx1g"],
      ["/usr/bin/docker"],
      ["/usr/bin/docker", "run", "-i", "--rm"],
      ["/usr/bin/docker", "run", "-i", "--rm", "mcp/server:latest"],
    ]) {
      const warnings = warningsFor(entry);
      expect(warnings, entry.join(" ")).toHaveLength(1);
      expect(warnings[0]).toContain("pins only a launcher");
    }
  });

  test("a package runner pinned to a package without an exact version", () => {
    for (const [entry, example] of [
      [["/usr/bin/npx", "-y", "@modelcontextprotocol/server-everything"], "@modelcontextprotocol/server-everything@1.2.3"],
      [["/usr/bin/npx", "pkg@latest"], "pkg@1.2.3"],
      [["/usr/bin/npx", "pkg@^1"], "pkg@1.2.3"],
      [["/usr/bin/pnpm", "dlx", "some-server"], "some-server@1.2.3"],
      [["/usr/local/bin/uvx", "mcp-server-fetch"], "mcp-server-fetch==1.2.3"],
      [["/usr/local/bin/uvx", "mcp-server-fetch>=1"], "mcp-server-fetch==1.2.3"],
      [["/usr/bin/npx", "--package=@s/x", "bin"], "@s/x@1.2.3"],
    ] as const) {
      const warnings = warningsFor([...entry]);
      expect(warnings, entry.join(" ")).toHaveLength(1);
      expect(warnings[0]).toContain("without an exact version");
      expect(warnings[0]).toContain(example);
    }
  });

  test("an entry is named by its command and package, never its other words", () => {
    const [warning] = warningsFor(["/usr/bin/npx", "-y", "@s/x", "--api-key", "sk-live-SECRET"]);
    expect(warning).toContain("/usr/bin/npx");
    expect(warning).not.toContain("sk-live-SECRET");
  });

  test("nothing for pinned and versioned entries, local packages, or programs that are not launchers", () => {
    expect(
      warningsFor(
        ["/usr/bin/npx", "-y", "@modelcontextprotocol/server-everything@2025.9.25"],
        ["/usr/bin/npx", "server-a@1.0.0"],
        ["/usr/bin/npx", "/opt/mcp/pkg"],
        ["/usr/local/bin/uvx", "mcp-server-fetch==2025.4.7"],
        ["/usr/bin/npm", "exec", "pkg@1.0.0"],
        ["/usr/bin/node", "/opt/mcp/server.js"],
        ["/usr/bin/node", "--max-old-space-size=4096", "/opt/mcp/server.js"],
        ["/usr/bin/python3", "-m", "mcp_server"],
        ["/usr/bin/bun", "/opt/mcp/server.ts"],
        ["/usr/bin/java", "-jar", "/opt/mcp/server.jar"],
        ["/usr/bin/env", "/usr/bin/node", "/opt/mcp/server.js"],
        ["/usr/bin/timeout", "60", "/usr/bin/node", "/opt/mcp/server.js"],
        ["/usr/bin/docker", "run", "-i", "--rm", "mcp/server:1.2.3"],
        ["/usr/bin/docker", "run", "-i", "--rm", "mcp/server@sha256:abc123"],
        ["/usr/local/bin/github-mcp-server"],
      ),
    ).toEqual([]);
  });
});
