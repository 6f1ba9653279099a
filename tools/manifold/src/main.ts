#!/usr/bin/env node
import { up } from "./up.js";

const USAGE = `usage: manifold <command>

commands:
  up      start nats-server, registry, connector, gateway and the demo (all-in-one)
`;

const [command] = process.argv.slice(2);
try {
  switch (command) {
    case "up":
      await up(process.env);
      break;
    case undefined:
    case "help":
    case "--help":
      console.log(USAGE);
      break;
    default:
      console.error(`manifold: unknown command '${command}'\n\n${USAGE}`);
      process.exitCode = 2;
  }
} catch (error) {
  console.error(`manifold: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
