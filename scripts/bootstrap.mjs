#!/usr/bin/env node
// The README's two commands run through here: `npm start` and `npm test` on a machine
// with only Node and npm. It installs what is missing (pnpm, nats-server, dependencies),
// builds, then hands over to the all-in-one launcher or the test suite.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const PNPM_VERSION = "12.21.0";
const root = fileURLToPath(new URL("..", import.meta.url));
const task = process.argv[2];

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  return result.status === 0;
}
const quiet = (command, args) => spawnSync(command, args, { cwd: root, stdio: "ignore" }).status === 0;
function must(command, args, what) {
  if (!run(command, args)) {
    console.error(`manifold: ${what} failed (${command} ${args.join(" ")})`);
    process.exit(1);
  }
}

function ensureNatsServer() {
  if (process.env.NATS_SERVER_BIN || quiet("nats-server", ["--version"])) return;
  console.log("manifold: nats-server not found, installing the Debian package");
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  const apt = (...args) => run(sudo[0] ?? "apt-get", sudo.length ? ["apt-get", ...args] : args);
  if (!(apt("update") && apt("install", "-y", "nats-server"))) {
    console.error("manifold: could not install nats-server; install it (https://nats.io) or set NATS_SERVER_BIN");
    process.exit(1);
  }
}

function pnpmCommand() {
  if (quiet("pnpm", ["--version"])) return ["pnpm"];
  console.log(`manifold: installing pnpm ${PNPM_VERSION}`);
  if (run("npm", ["install", "-g", `pnpm@${PNPM_VERSION}`]) && quiet("pnpm", ["--version"])) return ["pnpm"];
  // No rights for a global install: run it through npx instead.
  return ["npx", "--yes", `pnpm@${PNPM_VERSION}`];
}

ensureNatsServer();
const [pnpm, ...pnpmArgs] = pnpmCommand();
must(pnpm, [...pnpmArgs, "install", "--frozen-lockfile"], "installing dependencies");
must(pnpm, [...pnpmArgs, "run", "build"], "building");

if (task === "test") {
  must(pnpm, [...pnpmArgs, "run", "check"], "the test suite");
} else if (task === "start") {
  must(process.execPath, ["--enable-source-maps", "tools/manifold/dist/main.js", "up", ...process.argv.slice(3)], "manifold up");
} else if (task !== "setup") {
  console.error(`manifold: unknown task '${task}' (start, test or setup)`);
  process.exit(1);
}
