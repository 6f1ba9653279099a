import { MAX_SESSION_SUBSCRIPTIONS, MAX_SESSION_SUBSCRIPTION_CHARS, MAX_URI_LENGTH, ManifoldError, type McpLogLevel, type SessionState } from "@manifold/contracts";

/** What a 2025-era session's requests change in its shared state. */
export type SessionChange = { type: "set-level"; level: McpLogLevel } | { type: "subscribe"; uri: string } | { type: "unsubscribe"; uri: string };

/**
 * The session's state after the change, or undefined when the change changes nothing (the same
 * level again, a URI already subscribed, one never subscribed). A subscription beyond
 * `MAX_SESSION_SUBSCRIPTIONS`, or past `MAX_SESSION_SUBSCRIPTION_CHARS` of URIs in all, is refused
 * with `too_many_subscriptions`, a URI longer than any record may hold with `invalid_arguments` (a
 * template can expand to one).
 */
export function changeSession<S extends SessionState>(state: S, change: SessionChange): S | undefined {
  const subscriptions = state.subscriptions ?? [];
  switch (change.type) {
    case "set-level":
      return state.logLevel === change.level ? undefined : { ...state, logLevel: change.level };
    case "subscribe":
      if (change.uri.length === 0 || change.uri.length > MAX_URI_LENGTH) {
        throw new ManifoldError("invalid_arguments", `invalid params: 'uri' must be a string of 1-${MAX_URI_LENGTH} characters`);
      }
      if (subscriptions.includes(change.uri)) return undefined;
      if (subscriptions.length >= MAX_SESSION_SUBSCRIPTIONS) {
        throw new ManifoldError(
          "too_many_subscriptions",
          `this session already holds ${subscriptions.length} resource subscriptions (at most ${MAX_SESSION_SUBSCRIPTIONS}); unsubscribe from one first`,
          { maxSubscriptions: MAX_SESSION_SUBSCRIPTIONS },
        );
      }
      if (charactersOf(subscriptions) + change.uri.length > MAX_SESSION_SUBSCRIPTION_CHARS) {
        throw new ManifoldError(
          "too_many_subscriptions",
          `this session's resource subscriptions would name more than ${MAX_SESSION_SUBSCRIPTION_CHARS} characters of URIs in all; unsubscribe from one first`,
          { maxCharacters: MAX_SESSION_SUBSCRIPTION_CHARS },
        );
      }
      return { ...state, subscriptions: [...subscriptions, change.uri] };
    case "unsubscribe":
      return subscriptions.includes(change.uri) ? { ...state, subscriptions: subscriptions.filter((uri) => uri !== change.uri) } : undefined;
  }
}

/** The characters of a session's subscribed URIs, all together. */
const charactersOf = (uris: readonly string[]) => uris.reduce((sum, uri) => sum + uri.length, 0);
