import { spawn } from "node:child_process";
import { describe, expect, test } from "vitest";

const mainOf = (service: string) => new URL(`../../services/${service}/dist/main.js`, import.meta.url).pathname;

/** Runs a service's entry point with only `env`, and returns how it ended and what it wrote to stderr. */
async function run(service: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [mainOf(service)], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((exited) => child.once("exit", exited));
  return { code, stderr };
}

// A service started by hand with a variable missing or mistyped is a new operator's first error: what
// they read must be the one line naming the variable, not a stack trace through parseEnv they
// have to search for it (as it was: 10 lines, the message on the fifth).
describe("a service started with a bad configuration", () => {
  const cases = [
    ["registry", {}, "registry: invalid configuration: MANIFOLD_ADMIN_TOKEN: set MANIFOLD_ADMIN_TOKEN"],
    ["gateway", { GATEWAY_PORT: "80a" }, "gateway: invalid configuration: GATEWAY_PORT: must be a port number"],
    ["connector", { CONNECTOR_PORT: "80a" }, "connector: invalid configuration: CONNECTOR_PORT: must be a port number"],
  ] as const;
  for (const [service, env, message] of cases) {
    test(`${service} exits 1 with one line naming the variable`, async () => {
      const { code, stderr } = await run(service, env);
      expect(code).toBe(1);
      expect(stderr.trim().split("\n")).toHaveLength(1);
      expect(stderr).toContain(message);
    }, 30_000);
  }
});
