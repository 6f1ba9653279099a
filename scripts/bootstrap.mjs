#!/usr/bin/env node
// The README's two commands run through here (and `pnpm bench`): `npm start` and `npm test` on a machine
// with only Node and npm. It installs what is missing (pnpm, nats-server, dependencies),
// builds, then hands over to the all-in-one launcher or the test suite.
//
// Under a supervisor the signal goes to the npm process. npm 11 forwards SIGINT and SIGTERM to
// its child only, and dies on SIGHUP without forwarding it; the start script `exec`s this file
// so that child is us (sh would die on SIGTERM and orphan everything below it). So every step
// runs as an async child we forward SIGINT/SIGTERM/SIGHUP to, a parent that disappears counts as
// SIGHUP, and we exit with the child's status once it has stopped.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { PINNED_NATS, pinnedNatsServer } from "./pinnedNatsServer.mjs";

const PNPM_VERSION = "12.21.0";
const root = fileURLToPath(new URL("..", import.meta.url));
const task = process.argv[2];

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };
let current; // the child running now
let signalled; // the first signal received; no later step starts once set
for (const signal of Object.keys(SIGNAL_NUMBERS)) {
  process.on(signal, () => {
    signalled ??= signal;
    current?.kill(signal);
  });
}
// npm dies on SIGHUP without telling us: we are re-parented, which we take as that SIGHUP.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.emit("SIGHUP", "SIGHUP");
}, 250).unref();

/** Runs a step as a child and resolves with its exit code (128 + n when a signal ended it). */
function run(command, args) {
  if (signalled) return Promise.resolve(128 + SIGNAL_NUMBERS[signalled]);
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, stdio: "inherit" });
    current = child;
    child.once("error", () => resolve(127));
    child.once("exit", (code, signal) => {
      current = undefined;
      resolve(code ?? 128 + (SIGNAL_NUMBERS[signal] ?? 9));
    });
  });
}
const quiet = (command, args) => spawnSync(command, args, { cwd: root, stdio: "ignore" }).status === 0;
async function must(command, args, what) {
  const status = await run(command, args);
  if (signalled) process.exit(status || 128 + SIGNAL_NUMBERS[signalled]);
  if (status !== 0) {
    console.error(`manifold: ${what} failed (${command} ${args.join(" ")})`);
    process.exit(status);
  }
}

const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
const apt = async (...args) => (await run(sudo[0] ?? "apt-get", sudo.length ? ["apt-get", ...args] : args)) === 0;

async function ensureNatsServer() {
  if (process.env.NATS_SERVER_BIN) return;
  const pinned = await pinnedNatsServer(root);
  if (pinned) {
    process.env.NATS_SERVER_BIN = pinned;
    return;
  }
  if (quiet("nats-server", ["--version"])) {
    console.warn(`manifold: using the nats-server on PATH, not the pinned ${PINNED_NATS.version}`);
    return;
  }
  console.log("manifold: nats-server not found, installing the Debian package");
  if (!((await apt("update")) && (await apt("install", "-y", "nats-server")))) {
    console.error("manifold: could not install nats-server; install it (https://nats.io) or set NATS_SERVER_BIN");
    process.exit(1);
  }
}

/** The console's browser tests drive Debian's Chromium; installed like nats-server when the tests are to run. */
async function ensureChromium() {
  if (process.env.CHROMIUM_BIN || quiet("/usr/bin/chromium", ["--version"])) return;
  console.log("manifold: chromium not found, installing the Debian package (for the console's browser tests)");
  if (!((await apt("update")) && (await apt("install", "-y", "chromium")))) {
    console.error("manifold: could not install chromium; install it or set CHROMIUM_BIN to a Chromium binary");
    process.exit(1);
  }
}

async function pnpmCommand() {
  if (quiet("pnpm", ["--version"])) return ["pnpm"];
  console.log(`manifold: installing pnpm ${PNPM_VERSION}`);
  if ((await run("npm", ["install", "-g", `pnpm@${PNPM_VERSION}`])) === 0 && quiet("pnpm", ["--version"])) return ["pnpm"];
  // No rights for a global install: run it through npx instead.
  return ["npx", "--yes", `pnpm@${PNPM_VERSION}`];
}

await ensureNatsServer();
if (task === "test") await ensureChromium();
const [pnpm, ...pnpmArgs] = await pnpmCommand();
await must(pnpm, [...pnpmArgs, "install", "--frozen-lockfile"], "installing dependencies");
await must(pnpm, [...pnpmArgs, "run", "build"], "building");

if (task === "test") {
  await must(pnpm, [...pnpmArgs, "run", "check"], "the test suite");
} else if (task === "bench") {
  // On the pinned nats-server too: the figures are those of what is deployed.
  process.exit(await run(process.execPath, ["--enable-source-maps", "bench/dist/main.js", ...process.argv.slice(3).filter((a) => a !== "--")]));
} else if (task === "start") {
  // The launcher's own status (0 after a stop by signal) is ours.
  process.exit(await run(process.execPath, ["--enable-source-maps", "tools/manifold/dist/main.js", "up", ...process.argv.slice(3)]));
} else if (task !== "setup") {
  console.error(`manifold: unknown task '${task}' (start, test, bench or setup)`);
  process.exit(1);
}
