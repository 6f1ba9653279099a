import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, test } from "vitest";

const CLI = new URL("../../tools/manifold/dist/main.js", import.meta.url).pathname;
const manifold = (...args: string[]) =>
  promisify(execFile)(process.execPath, [CLI, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );

/** The block of one identity in a rendered auth.conf: from its `nkey:` line to the next identity. */
const blockOf = (conf: string, nkey: string) => conf.slice(conf.indexOf(`nkey: ${nkey}`)).split(/\n {4}# /)[0]!;

describe("manifold nats … --connector-group", () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  test("keys writes each group an identity of its own, and prints only public keys", async () => {
    const dir = await mkdtemp(join(tmpdir(), "manifold-keys-"));
    dirs.push(dir);
    const { code, stdout } = await manifold("nats", "keys", dir, "--connector-group", "recs=rec,rec-two", "--connector-group", "mail=smtp");
    expect(code).toBe(0);
    const printed = Object.fromEntries(stdout.trim().split("\n").map((line) => line.split("=") as [string, string]));
    expect(Object.keys(printed)).toEqual(["MANIFOLD_REGISTRY_NKEY", "MANIFOLD_CONNECTOR_NKEY", "MANIFOLD_GATEWAY_NKEY", "MANIFOLD_CONNECTOR_RECS_NKEY", "MANIFOLD_CONNECTOR_MAIL_NKEY"]);
    for (const key of Object.values(printed)) expect(key).toMatch(/^U[A-Z2-7]{55}$/);
    expect(new Set(Object.values(printed)).size).toBe(5);
    const seed = (await readFile(join(dir, "connector-recs.nk"), "utf8")).trim();
    expect(seed).toMatch(/^SU/);
    expect(stdout).not.toContain(seed);
    expect((await stat(join(dir, "connector-recs.nk"))).mode & 0o777).toBe(0o600);
  });

  test("auth-conf gives a group's identity its upstreams' subjects and no other's", async () => {
    const { code, stdout } = await manifold("nats", "auth-conf", "--connector-group", "recs=rec,rec-two");
    expect(code).toBe(0);
    const group = blockOf(stdout, "$MANIFOLD_CONNECTOR_RECS_NKEY");
    expect(group).toContain('"manifold.rpc.upstream.rec.call"');
    expect(group).toContain('"manifold.rpc.upstream.rec-two.call"');
    expect(group).toContain('"manifold.health.upstream.rec.*"');
    expect(group).not.toContain("manifold.rpc.upstream.*.");
    // The connector identity for all upstreams is still there, for connectors without a group.
    expect(blockOf(stdout, "$MANIFOLD_CONNECTOR_NKEY")).toContain('"manifold.rpc.upstream.*.call"');
  });

  const refused = [["recs"], ["recs="], ["Recs=rec"], ["recs=rec,UPPER"], ["recs=rec=other"], ["recs=rec", "--connector-group", "recs=other"]];
  test.each(refused.map((args) => [args.join(" "), args] as const))("refuses --connector-group %s", async (_, args) => {
    const { code, stderr } = await manifold("nats", "auth-conf", "--connector-group", ...args);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/--connector-group/);
  });
});
