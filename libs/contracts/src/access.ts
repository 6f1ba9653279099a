import { z } from "zod";
import { ExposedToolName, ResourceName } from "./names.js";

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

/** Who a grant is for: one consumer, or everyone in a group (from the consumer or a token's claim). */
export const GrantSubject = z.union([z.strictObject({ consumer: ResourceName }), z.strictObject({ group: GroupName })]);
export type GrantSubject = z.infer<typeof GrantSubject>;

export const Grant = z.strictObject({
  grantId: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  subject: GrantSubject,
  /** Tools of the virtual server this subject may neither see nor call. */
  deniedTools: z.array(ExposedToolName).default([]),
  /** Calls per minute for each consumer under this grant; unlimited when absent. */
  rateLimitPerMinute: z.number().int().positive().optional(),
  /** The one environment this grant applies to; every environment when absent. */
  environment: ResourceName.optional(),
});
export type Grant = z.infer<typeof Grant>;

export const IdentityProvider = z.strictObject({
  name: ResourceName,
  issuer: z.url(),
  audience: z.string().min(1),
  jwksUrl: z.url({ protocol: /^https?$/ }),
  /** The claim whose value names a registered consumer. */
  consumerClaim: z.string().min(1).default("sub"),
  /** The claim holding the token's groups (an array of strings, or one string). */
  groupsClaim: z.string().min(1).default("groups"),
});
export type IdentityProvider = z.infer<typeof IdentityProvider>;

/** Admin API bodies. */
export const CreateConsumerBody = z.strictObject({
  name: ResourceName,
  description: z.string().max(1024).optional(),
  groups: z.array(GroupName).default([]),
});
/** Replaces a consumer's description and groups; its keys stay as they are. */
export const UpdateConsumerBody = CreateConsumerBody.omit({ name: true });
export const GrantBody = Grant.omit({ grantId: true }).extend({ grantId: Grant.shape.grantId.optional() });
