#!/usr/bin/env node
import { admin } from "./adminCommands.js";
import { audit } from "./audit.js";
import { apply, exportCommand } from "./gitops/commands.js";
import { nats } from "./natsCommands.js";
import { up } from "./up.js";

const USAGE = `usage: manifold <command>

commands:
  up                    start nats-server, registry, connector, gateway and the demo (all-in-one)
  audit query [filters] print audit records (--virtual-server, --consumer, --tool, --upstream,
                        --outcome ok|error|input_required, --since, --until, --limit, --json)
  audit tail [filters]  follow new audit records live
  get <kind> [name]     list, or show one of: upstreams, virtual-servers, consumers, identity-providers
  create <kind> -f <file>
                        create one from a YAML or JSON body (the admin API's shape)
  delete <kind> <name>  delete one
  history <kind> <name> who changed it, what and when (also after it was deleted)
  discover <upstream>   ask a connector for the live tool list (with hashes) and record changes
  drift <vs> [-e <env>] pending drift of a virtual server (tools, prompts, resources), with its
                        class, the definition it would pin (current), reasons and diff
  accept <vs> <name|uri> [-e <env>] [--hash <current>]
                        re-pin a drifted tool, prompt or resource to the upstream's current definition
  reject <vs> <name|uri> [-e <env>] [--hash <current>]
                        keep the pin and mark the change reviewed
                        (-e/--environment: review the pins promoted there; default: default;
                        --hash: the definition reviewed, as drift printed it: refused if it changed since)
  apply -f <file> [--dry-run] [--prune]
                        make the registry match a manifold.yaml; --dry-run prints the plan
  export [-o <file>]    write the registry as a manifold.yaml
  promote <vs> --from <env> --to <env> [--force]
                        copy a virtual server's pins to another environment; refused, with the
                        differences, when that environment's upstreams differ (unless --force)

  nats auth-conf        print the NATS authorization block (deploy/nats/auth.conf) rendered from code
  nats keys <dir>       write one nkey seed file per service into <dir> (kept if present) and print
                        the public keys nats-server needs (MANIFOLD_<ROLE>_NKEY=…)
    --connector-group <group>=<upstream>,…   (both, repeatable) an identity for the connectors of
                        those upstreams only (CONNECTOR_UPSTREAMS): connector-<group>.nk,
                        MANIFOLD_CONNECTOR_<GROUP>_NKEY

Commands other than up and nats use MANIFOLD_REGISTRY_URL (http://127.0.0.1:8081) and MANIFOLD_ADMIN_TOKEN
(or .manifold/admin-token).
`;

const [command, ...args] = process.argv.slice(2);
try {
  switch (command) {
    case "up":
      await up(process.env);
      break;
    case "nats":
      await nats(args);
      break;
    case "audit":
      await audit(args, process.env);
      break;
    case "apply":
      await apply(args, process.env);
      break;
    case "export":
      await exportCommand(args, process.env);
      break;
    case "get":
    case "create":
    case "delete":
    case "history":
    case "discover":
    case "drift":
    case "accept":
    case "reject":
    case "promote":
      await admin(command, args, process.env);
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
