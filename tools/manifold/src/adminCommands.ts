import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { adminCall, adminTarget, type AdminError } from "./adminClient.js";
import { shown } from "./terminalText.js";
import { listAll, pagesOf, readVirtualServer } from "./gitops/plan.js";

const KINDS: Record<string, string> = {
  upstream: "upstreams",
  upstreams: "upstreams",
  "virtual-server": "virtual-servers",
  "virtual-servers": "virtual-servers",
  vs: "virtual-servers",
  consumer: "consumers",
  consumers: "consumers",
  "identity-provider": "identity-providers",
  "identity-providers": "identity-providers",
  environment: "environments",
  environments: "environments",
};

const kindOf = (word: string | undefined) => {
  const kind = word && KINDS[word];
  if (!kind) throw new Error(`unknown kind '${word ?? ""}': one of upstreams, virtual-servers, consumers, identity-providers`);
  return kind;
};
const need = (value: string | undefined, what: string) => {
  if (!value) throw new Error(`missing ${what}`);
  return encodeURIComponent(value);
};
const print = (value: unknown) => console.log(JSON.stringify(value, null, 2));
/**
 * `-e/--environment <name>` after the positional arguments and, for an accept or reject, `--hash`:
 * the definition reviewed (a drift's `current`, or `gone`), which the registry refuses (409) once the
 * upstream has reported another since. As a query string ("" for neither).
 */
const queryOptions = (options: string[], decision = false) => {
  const { environment, hash } = parseArgs({ args: options, options: { environment: { type: "string", short: "e" }, ...(decision ? { hash: { type: "string" } } : {}) } }).values as {
    environment?: string;
    hash?: string;
  };
  const query = new URLSearchParams({ ...(environment ? { environment } : {}), ...(hash ? { hash } : {}) }).toString();
  return { environment, query: query ? `?${query}` : "" };
};
/** A drift's lines: what it is, the definition it would pin (`current`, for `--hash`), then why and how it differs. */
const printDrift = (heading: string, d: { currentHash: string | null; reasons: string[]; diff: unknown[] }) => {
  console.log(shown(heading));
  console.log(`  current: ${d.currentHash ?? "gone"}`);
  for (const reason of d.reasons) console.log(`  - ${shown(reason)}`);
  for (const op of d.diff) console.log(`  ${JSON.stringify(op)}`);
};

/** `manifold get|history|delete|discover|drift|accept|reject …`: thin verbs over the registry's admin API. */
export async function admin(command: string, args: string[], env: Record<string, string | undefined>): Promise<void> {
  const target = await adminTarget(env);
  const [first, second] = args;
  switch (command) {
    case "get": {
      const kind = kindOf(first);
      // A virtual server whole: its view counts what it holds, which is read from its paged routes.
      if (second && kind === "virtual-servers") return print(await readVirtualServer(target, second));
      if (second) return print(await adminCall(target, "GET", `/v1/${kind}/${need(second, "name")}`));
      // Every page of the list, in name order.
      for (const item of (await listAll(target, kind)) as { name: string; version?: number }[]) console.log(`${item.name}${item.version ? `  (version ${item.version})` : ""}`);
      return;
    }
    case "create": {
      const { values } = parseArgs({ args: args.slice(1), options: { file: { type: "string", short: "f" } } });
      if (!values.file) throw new Error("usage: manifold create <kind> -f <file.yaml|json>");
      // YAML is a superset of JSON: one parser reads both.
      const body = parse(await readFile(values.file, "utf8"));
      const kind = kindOf(first);
      // An environment is put under its name (the API has no POST for one).
      if (kind === "environments") {
        const { name, ...environment } = body as { name?: string };
        const path = `/v1/environments/${need(name, "name in the file")}`;
        const exists = await adminCall(target, "GET", path).then(
          () => true,
          (error: AdminError) => (error.status === 404 ? false : Promise.reject(error)),
        );
        if (exists) throw new Error(`environment '${name}' already exists`);
        await adminCall(target, "PUT", path, environment);
        return console.log(`created environment ${name}`);
      }
      const created = await adminCall(target, "POST", `/v1/${kind}`, body);
      console.log(`created ${first} ${created.name ?? ""}`.trim());
      if (created.discovery?.status === "failed") console.log(`discovery failed: ${created.discovery.error.message}`);
      return;
    }
    case "history": {
      const body = await adminCall(target, "GET", `/v1/${kindOf(first)}/${need(second, "name")}/history?limit=1000`);
      for (const e of body.items as { sequence: number; at: string; actor?: string; type: string }[]) {
        console.log(`${e.at}  ${e.actor ?? "-"}  ${e.type}  (#${e.sequence})`);
      }
      if (body.next !== undefined) console.log(`… more after #${body.next}`);
      return;
    }
    case "delete":
      await adminCall(target, "DELETE", `/v1/${kindOf(first)}/${need(second, "name")}`);
      console.log(`deleted ${first} ${second}`);
      return;
    case "discover": {
      const body = await adminCall(target, "POST", `/v1/upstreams/${need(first, "upstream")}/discover`, {});
      for (const tool of body.tools as { name: string; hash: string }[]) console.log(`${shown(tool.name)}  ${tool.hash}`);
      if (body.discovery.status !== "ok") throw new Error(`discovery failed: ${body.discovery.error.message}`);
      return;
    }
    case "drift": {
      // Every page of the tool drift, by exposed name (the first says the policy and environment), then every page of the prompts', resources' and templates'.
      let body: any;
      const pageQuery = `limit=500${queryOptions(args.slice(1)).query.replace("?", "&")}`;
      const path = `/v1/virtual-servers/${encodeURIComponent(need(first, "virtual server"))}/drift`;
      const pages = await pagesOf(target, path, pageQuery, (page) => (body ??= page));
      type Pending = { classification: string; upstream: string; currentHash: string | null; reasons: string[]; diff: unknown[] };
      const tools = pages as (Pending & { exposedName: string; tool: string })[];
      const others = (await pagesOf(target, `${path}/items`, pageQuery)) as (Pending & { key: string; kind: string; original: string })[];
      if (tools.length === 0 && others.length === 0) console.log(`no pending drift in ${body.environment} (policy: ${body.policy})`);
      for (const d of tools) printDrift(`${d.exposedName}  ${d.classification}  (${d.upstream}/${d.tool})`, d);
      // Prompts are decided by exposed name like tools; resources and templates by exposed URI (`accept <vs> <uri>`).
      for (const d of others) printDrift(`${d.key}  ${d.classification}  (${d.kind} ${d.upstream}/${d.original})`, d);
      return;
    }
    case "promote": {
      const { values } = parseArgs({ args: args.slice(1), options: { from: { type: "string" }, to: { type: "string" }, force: { type: "boolean" } } });
      const body = { from: values.from ?? "default", to: need(values.to, "--to"), force: values.force ?? false };
      // Through `adminCall` like every command: its Idempotency-Key, and resent on 429, 503 and a dropped connection.
      try {
        await adminCall(target, "POST", `/v1/virtual-servers/${need(first, "virtual server")}/promote`, body);
      } catch (error) {
        const { code, data } = error as AdminError;
        if (code === "definitions_differ") {
          for (const d of (data as { differences: { exposedName: string; classification: string; upstream: string; tool: string; diff: unknown[] }[] }).differences) {
            console.log(shown(`${d.exposedName}  ${d.classification}  (${d.upstream}/${d.tool})`));
            for (const op of d.diff) console.log(`  ${JSON.stringify(op)}`);
          }
        }
        throw error;
      }
      return console.log(`promoted ${first} from ${body.from} to ${body.to}`);
    }
    case "accept":
    case "reject": {
      const { environment, query } = queryOptions(args.slice(2), true);
      const vs = need(first, "virtual server");
      const name = need(second, "tool, prompt or resource");
      // An exposed resource URI (`<upstream>+<uri>`, or any URI with a scheme) goes in a body: it does not fit in a path segment.
      if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(second!)) await adminCall(target, "POST", `/v1/virtual-servers/${vs}/resource-drift/${command}${query}`, { uri: second });
      else await adminCall(target, "POST", `/v1/virtual-servers/${vs}/drift/${name}/${command}${query}`, {});
      console.log(`${command}ed drift of ${second} on ${first}${environment ? ` in ${environment}` : ""}`);
      return;
    }
  }
  throw new Error(`unknown command '${command}'`);
}
