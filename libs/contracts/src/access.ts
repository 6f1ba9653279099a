import { z } from "zod";
import { noUrlCredentialsIn } from "./literalSecrets.js";
import { ExposedToolName, ResourceName, UpstreamToolName } from "./names.js";
import { PromptIdentity, ResourceIdentity, ResourceUri } from "./mcpItems.js";

/** API keys are `mk_<keyId>_<secret>`; only the key id and a salted digest of the secret are stored. */
export const KeyId = z.string().regex(/^[a-z2-7]{12}$/);
export const API_KEY_PATTERN = /^mk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})$/;

export const StoredKey = z.strictObject({
  keyId: KeyId,
  /** base64url salt and SHA-256 over salt + secret: the secret has 256 bits, so a fast digest suffices. */
  salt: z.string().min(16),
  digest: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
});
export type StoredKey = z.infer<typeof StoredKey>;

export const GroupName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, { message: "must be 1-128 of [A-Za-z0-9._:-]" });

/**
 * Who a grant is for: one consumer, everyone in a group (from the consumer or a token's claim),
 * or callers without credentials. An anonymous grant admits no one unless the gateway's operator
 * also set `GATEWAY_ALLOW_ANONYMOUS=true` (docs/security.md), and it never covers an authenticated caller.
 */
export const GrantSubject = z.union([
  z.strictObject({ consumer: ResourceName }),
  z.strictObject({ group: GroupName }),
  z.strictObject({ anonymous: z.literal(true) }),
]);
export type GrantSubject = z.infer<typeof GrantSubject>;

/**
 * A tool's stable identity in a virtual server: the upstream its selection names (the logical
 * one, bound per environment) and the tool's original name. Renames, aliases, deprecated
 * aliases, description overrides and promotion never change it, so grants refer to it.
 */
export const ToolIdentity = z.strictObject({ upstream: ResourceName, tool: UpstreamToolName });
export type ToolIdentity = z.infer<typeof ToolIdentity>;

/**
 * A denied tool as an admin names it: its identity, or any name the virtual server answers to
 * (exposed name, deprecated alias). The registry resolves names to identities when it decides the
 * grant and records identities only; grants recorded before that hold exposed names, resolved on replay.
 */
export const DeniedTool = z.union([ExposedToolName, ToolIdentity]);
export type DeniedTool = z.infer<typeof DeniedTool>;

/** A denied prompt as an admin names it: its identity, or its exposed name; recorded as the identity. */
export const DeniedPrompt = z.union([ExposedToolName, PromptIdentity]);
export type DeniedPrompt = z.infer<typeof DeniedPrompt>;
/**
 * A denied resource or template as an admin names it: its identity, or the exposed URI (template)
 * agents see (an exposed URI that a selected template expands to names that one resource);
 * recorded as the identity.
 */
export const DeniedResource = z.union([ResourceUri, ResourceIdentity]);
export type DeniedResource = z.infer<typeof DeniedResource>;

export const Grant = z.strictObject({
  grantId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  subject: GrantSubject,
  /** Tools of the virtual server this subject may neither see nor call, whatever name they are called by. */
  deniedTools: z.array(DeniedTool).default([]),
  /**
   * Prompts, and resources or templates, this subject may neither list nor get, read, complete or
   * subscribe to, whatever they are exposed as. Absent (as in events recorded before they existed) means none.
   */
  deniedPrompts: z.array(DeniedPrompt).max(1_000).optional(),
  deniedResources: z.array(DeniedResource).max(1_000).optional(),
  /** Calls per minute for each consumer under this grant; unlimited when absent. */
  rateLimitPerMinute: z.number().int().positive().optional(),
  /** The one environment this grant applies to; every environment when absent. */
  environment: ResourceName.optional(),
});
export type Grant = z.infer<typeof Grant>;
/** A grant as the registry keeps it: denied tools, prompts and resources by identity only. */
export type ResolvedGrant = Omit<Grant, "deniedTools" | "deniedPrompts" | "deniedResources"> & {
  deniedTools: ToolIdentity[];
  deniedPrompts: PromptIdentity[];
  deniedResources: ResourceIdentity[];
};

export const IdentityProvider = z.strictObject({
  name: ResourceName,
  issuer: z.url(),
  /** The audience its tokens must name; not used (and optional) for an `authorizationServer`. */
  audience: z.string().min(1).optional(),
  jwksUrl: z.url({ protocol: /^https?$/ }),
  /** The claim whose value names a registered consumer. */
  consumerClaim: z.string().min(1).default("sub"),
  /** The claim holding the token's groups (an array of strings, or one string). */
  groupsClaim: z.string().min(1).default("groups"),
  /**
   * The groups this provider's tokens may claim; a group its groups claim names outside this list
   * is ignored. Group names are one namespace (the registry's consumer groups and every provider's
   * claims), so none by default: a provider registered for one partner's sign-in could otherwise
   * claim any group and get its grants.
   */
  groups: z.array(GroupName).max(256).default([]),
  /**
   * An OAuth 2.1 authorization server for MCP clients (docs/identity.md): listed in every virtual
   * server's protected resource metadata (RFC 9728), and its tokens are accepted only with the
   * virtual server's resource URL among their audiences (RFC 8707) — `audience` is not used — and
   * only as a consumer that accepts this provider.
   */
  authorizationServer: z.boolean().optional(),
}).refine((p) => p.authorizationServer === true || p.audience !== undefined, { message: "audience is required unless authorizationServer is true", path: ["audience"] });
export type IdentityProvider = z.infer<typeof IdentityProvider>;
/** An identity provider as an admin registers one: its URLs carry no credentials (recorded ones replay as they are). */
export const IdentityProviderBody = IdentityProvider.superRefine(noUrlCredentialsIn(["issuer", "jwksUrl"]));

/** Admin API bodies. */
export const CreateConsumerBody = z.strictObject({
  name: ResourceName,
  description: z.string().max(1024).optional(),
  groups: z.array(GroupName).default([]),
  /**
   * The identity providers whose tokens may act as this consumer (their consumer claim naming
   * it); none by default, so a consumer that only uses API keys cannot be impersonated by a token.
   */
  identityProviders: z.array(ResourceName).max(16).default([]),
});
/** Replaces a consumer's description, groups and identity providers; its keys stay as they are. */
export const UpdateConsumerBody = CreateConsumerBody.omit({ name: true });
export const GrantBody = Grant.omit({ grantId: true }).extend({
  grantId: Grant.shape.grantId.optional(),
  // As many as denied prompts or resources. Bounded in the request, not in the event (`Grant`), so a
  // log recorded before the bound still replays.
  deniedTools: Grant.shape.deniedTools.unwrap().max(1_000).default([]),
});
