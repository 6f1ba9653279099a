import { EventType, ManifoldError, type CommandType, type NewEvent, type RegistryCommand } from "@manifold/contracts";
import { isDeepStrictEqual } from "node:util";
import { discoveredItems } from "./decideItems.js";
import { definitionPatch } from "./definitionText.js";
import { classifyDrift } from "./drift.js";
import { definitionHash, pinDefinition, registrationHash } from "./hashing.js";
import { newEvent } from "./newEvent.js";
import type { CatalogView } from "./state.js";

type RecordDiscovery = Extract<RegistryCommand, { type: typeof CommandType.recordDiscovery }>;

/**
 * What an upstream's lists, as a connector read them, mean for the catalog: nothing when they are
 * as recorded, else one event holding them and (after the first recording) each change's drift.
 */
export function decideDiscovery(command: RecordDiscovery, catalog: CatalogView): NewEvent[] {
  const upstream = catalog.upstream(command.name);
  if (!upstream) throw new ManifoldError("not_found", `upstream '${command.name}' does not exist`);
  // Checked here, in turn with the other commands: a re-registration decided after the lists were
  // read (another URL, another server) would otherwise have the old server's lists recorded as its own.
  if (command.registration !== undefined && command.registration !== registrationHash(upstream)) {
    throw new ManifoldError("upstream_unavailable", `upstream '${command.name}' was registered again since its lists were read: they are not recorded`, { reason: "reconfiguring" });
  }
  // A list naming one thing twice is refused: which definition would be pinned is anyone's guess,
  // and it never equalled the one recorded, so every rediscovery appended the whole list again.
  const twice =
    repeated("tool", command.tools.map((t) => t.name)) ??
    repeated("prompt", (command.prompts ?? []).map((p) => p.name)) ??
    repeated("resource", (command.resources ?? []).map((r) => r.uri)) ??
    repeated("resource template", (command.resourceTemplates ?? []).map((t) => t.uriTemplate));
  if (twice) throw new ManifoldError("upstream_error", `upstream '${command.name}' lists ${twice} more than once: its lists are not recorded`);
  const tools = command.tools.map((tool) => {
    const definition = pinDefinition(tool);
    return { hash: definitionHash(definition), definition };
  });
  const items = discoveredItems(upstream, command);
  const unchanged =
    items.unchanged &&
    isDeepStrictEqual(upstream.serverInfo, command.serverInfo) &&
    tools.length === upstream.tools.size &&
    tools.every((t) => upstream.tools.get(t.definition.name)?.hash === t.hash);
  if (unchanged) return [];
  const now = new Map(tools.map((t) => [t.definition.name, t]));
  const changedTools = [...new Set([...upstream.tools.keys(), ...now.keys()])].filter((tool) => upstream.tools.get(tool)?.hash !== now.get(tool)?.hash);
  const toolChanges = () =>
    changedTools.map((tool) => {
      const before = upstream.tools.get(tool);
      const after = now.get(tool);
      const { classification, diff } = before
        ? classifyDrift(before.definition, after?.definition)
        : { classification: "compatible" as const, diff: definitionPatch({}, after!.definition) };
      // rfc6902's operation interfaces are plain JSON objects; the event schema says so loosely.
      return { tool, before: before?.hash ?? null, after: after?.hash ?? null, classification, diff: diff as unknown as { op: string; path: string }[] };
    });
  const previous = upstream.serverInfo?.version;
  const lists: ListsDiscovered = {
    name: command.name,
    serverInfo: command.serverInfo,
    tools,
    ...(items.prompts.length ? { prompts: items.prompts } : {}),
    ...(items.resources.length ? { resources: items.resources } : {}),
    ...(items.resourceTemplates.length ? { resourceTemplates: items.resourceTemplates } : {}),
    changes: [],
    ...(previous !== undefined && previous !== command.serverInfo.version ? { previousServerVersion: previous } : {}),
  };
  // The first recording lists no changes (nothing was pinned from it).
  const changeCount = upstream.serverInfo ? changedTools.length + items.changes.length : 0;
  return [fittingMessage(command.maxEventBytes, lists, changeCount, () => [...toolChanges(), ...items.changes])];
}

/** `tool 'x'` for the first name listed twice, or undefined. */
function repeated(kind: string, names: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) return `${kind} '${name.slice(0, 128)}'`;
    seen.add(name);
  }
  return undefined;
}

type ListsDiscovered = Extract<NewEvent, { type: typeof EventType.upstreamToolsDiscovered }>["data"];

/**
 * A list change's event, made to fit one bus message: the changes' diffs go first, then the
 * changes themselves (counted), never the lists. The diffs roughly doubled an event of changed
 * text: 1,000 tools whose descriptions all changed made 1.56 MB, over a bus message, so the change
 * was never recorded and every pinned tool's drift stayed unseen (largeListChange.e2e). What is
 * left out is still in the log: the definitions before and after.
 *
 * Sized once without its changes (`lists` holds none), then each candidate's changes added to that
 * size: the lists were serialised up to three times, and every changed tool's drift classified
 * (~20–30 µs each) even for lists that no message could hold and that the store then refused
 * (0.3–0.55 s of a 10,000-tool list's decision, `decide.cost.unit`). Such lists are now refused
 * without classifying anything.
 */
function fittingMessage(maxBytes: number | undefined, lists: ListsDiscovered, changeCount: number, changesOf: () => ListsDiscovered["changes"]): NewEvent {
  const event = (d: ListsDiscovered) => newEvent(EventType.upstreamToolsDiscovered, d);
  if (changeCount === 0) return event(lists);
  // Too large even without its changes: the event store refuses it, naming its size.
  const omitted = () => event({ ...lists, changesOmitted: changeCount });
  // `"changes":[]` in it, whose `[]` a candidate's changes replace.
  const listsBytes = maxBytes === undefined ? 0 : Buffer.byteLength(JSON.stringify(event(lists)));
  if (maxBytes !== undefined && listsBytes > maxBytes) return omitted();
  const fits = (changes: ListsDiscovered["changes"]) => maxBytes === undefined || listsBytes - 2 + Buffer.byteLength(JSON.stringify(changes)) <= maxBytes;
  const changes = changesOf();
  if (fits(changes)) return event({ ...lists, changes });
  const withoutDiffs = changes.map((c) => ({ ...c, diff: [], diffOmitted: true as const }));
  if (fits(withoutDiffs)) return event({ ...lists, changes: withoutDiffs });
  return omitted();
}

