#!/usr/bin/env node
import { audit } from "./audit.js";
import { up } from "./up.js";

const USAGE = `usage: manifold <command>

commands:
  up                    start nats-server, registry, connector, gateway and the demo (all-in-one)
  audit query [filters] print audit records (--virtual-server, --consumer, --tool, --upstream,
                        --outcome ok|error, --since, --until, --limit, --json)
  audit tail [filters]  follow new audit records live

The audit commands use MANIFOLD_REGISTRY_URL (http://127.0.0.1:8081) and MANIFOLD_ADMIN_TOKEN
(or .manifold/admin-token).
`;

const [command, ...args] = process.argv.slice(2);
try {
  switch (command) {
    case "up":
      await up(process.env);
      break;
    case "audit":
      await audit(args, process.env);
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
