import { DEFAULT_ENVIRONMENT } from "@manifold/contracts";
import type { VirtualServerState } from "@manifold/domain";

/**
 * What an accept or reject answers: what was decided and the pin it leaves (`null`: nothing is
 * pinned under the name there any more, as after accepting a tool's removal). Before, a decision
 * answered the virtual server's whole view: 530 KiB for a server of 500 tools, and up to 28 MB
 * with many environments, read again by the console after every decision.
 */
export function driftDecisionAnswer(vs: VirtualServerState, environment: string, key: string, decision: "accept" | "reject", result: { version: number; changed: boolean }) {
  return { virtualServer: vs.name, version: result.version, environment, exposedName: key, decision, changed: result.changed, pin: pinOf(vs, environment, key) };
}

function pinOf(vs: VirtualServerState, environment: string, key: string) {
  const tools = environment === DEFAULT_ENVIRONMENT ? vs.tools : vs.environments.get(environment);
  const items = environment === DEFAULT_ENVIRONMENT ? vs : (vs.environmentItems.get(environment) ?? vs);
  const tool = tools?.get(key);
  if (tool) return { upstream: tool.upstream, tool: tool.tool, hash: tool.hash };
  const prompt = items.prompts.get(key);
  if (prompt) return { upstream: prompt.upstream, prompt: prompt.prompt, hash: prompt.hash };
  const resource = items.resources.get(key);
  if (resource) return { upstream: resource.upstream, uri: resource.uri, hash: resource.hash };
  const template = items.resourceTemplates.get(key);
  if (template) return { upstream: template.upstream, uriTemplate: template.uriTemplate, hash: template.hash };
  return null;
}
