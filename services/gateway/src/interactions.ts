import { InteractionSettings, mayAsk, type InputRequest, type InputRequiredReply, type InteractionCapabilities, isRecord } from "@manifold/contracts";
import type { Principal } from "@manifold/domain";
import { createHash } from "node:crypto";
import type { GatewayCatalog } from "./catalog.js";
import type { McpCall } from "./mcpCall.js";

const CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities";
const DEFAULTS = InteractionSettings.parse({});

/** The capabilities a 2026-07-28 request declares in its envelope (the SDK has checked the envelope's shape). */
export function envelopeCapabilities(call: McpCall): Record<string, unknown> | undefined {
  const params = isRecord(call.body) ? call.body.params : undefined;
  const meta = isRecord(params) ? params._meta : undefined;
  const declared = isRecord(meta) ? meta[CLIENT_CAPABILITIES] : undefined;
  return isRecord(declared) ? declared : undefined;
}

/**
 * What the agent of this call may be asked during it: what it declared (2025: at initialize;
 * 2026-07-28: in the request's envelope) and its virtual server allows. Undefined when nothing:
 * such a call carries no interaction header and pays nothing for the relay.
 */
export function allowedInteractions(catalog: GatewayCatalog, call: McpCall, declared: Record<string, unknown> | undefined): InteractionCapabilities | undefined {
  if (!declared) return undefined;
  const settings = catalog.projection.virtualServer(call.virtualServer)?.interactions ?? DEFAULTS;
  const allowed: InteractionCapabilities = {};
  const elicitation = declared.elicitation;
  if (settings.elicitation && isRecord(elicitation)) {
    // Without modes, form only (client/elicitation, "Capabilities").
    const form = isRecord(elicitation.form) || !isRecord(elicitation.url);
    allowed.elicitation = { ...(form ? { form: {} } : {}), ...(isRecord(elicitation.url) ? { url: {} } : {}) };
  }
  const sampling = declared.sampling;
  if (settings.sampling && isRecord(sampling)) {
    // Kept: only an agent that declared them may be sent sampling with tools or context (client/sampling).
    allowed.sampling = { ...(isRecord(sampling.tools) ? { tools: {} } : {}), ...(isRecord(sampling.context) ? { context: {} } : {}) };
  }
  if (settings.roots && isRecord(declared.roots)) allowed.roots = {};
  return Object.keys(allowed).length > 0 ? allowed : undefined;
}

/** A principal's digest, made once per principal rather than per call. */
const digests = new Map<string, string>();
/** Names the caller to the connector holding its call without naming it: only the same caller can resume a round. */
export function callerDigest(principal: Principal): string {
  let digest = digests.get(principal.id);
  if (digest === undefined) {
    // Bounded: principals come from credentials, and a flood of new ones only costs a rehash.
    if (digests.size >= 10_000) digests.clear();
    digests.set(principal.id, (digest = createHash("sha256").update(`manifold-caller\0${principal.id}`).digest("base64url").slice(0, 22)));
  }
  return digest;
}

/**
 * A 2025-era agent's answers to a round: each request it may receive is sent on its request's
 * stream (`send`); a refused, failed or unanswered one is left out, and the connector refuses
 * it upstream.
 */
export async function answerOnStream(
  input: InputRequiredReply,
  capabilities: InteractionCapabilities | undefined,
  send: (request: InputRequest) => Promise<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  const answers: Record<string, unknown> = {};
  for (const [key, request] of Object.entries(input.inputRequests)) {
    if (!mayAsk(capabilities, request)) continue;
    try {
      answers[key] = await send(request);
    } catch {
      // The agent refused or failed: the upstream hears that it was not answered.
    }
  }
  return answers;
}
