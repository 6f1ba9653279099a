/**
 * The most of each thing the registry holds; past it a command that would add one is refused with
 * `limit_reached`, naming the limit, and removing one makes room. Every node keeps the whole catalog
 * in memory and folds every event at boot, and an event adding one key, grant or tool copies its
 * consumer's or virtual server's map of them: unbounded, a consumer given a key per CI job made each
 * node's boot quadratic (20,000 keys held the event loop 53 s, 40,000 keys 245 s). Counted by the
 * replica deciding: two deciding at once may each add the last one.
 */
export const RegistryLimits = {
  upstreams: 10_000,
  virtualServers: 10_000,
  consumers: 100_000,
  environments: 1_000,
  identityProviders: 100,
  /** Live keys: a revoked one leaves the consumer. */
  keysPerConsumer: 100,
  /** Grants to groups cover any number of consumers with one. */
  grantsPerVirtualServer: 1_000,
  /** Each of tools, prompts, resources and resource templates (the bench's largest list is 5,000 tools). */
  itemsPerVirtualServer: 10_000,
  /**
   * Tools, prompts, resources and templates promoted into a virtual server's environments, all of
   * them together. Its view lists each, and a rename copies each environment serving the name:
   * 1,000 environments of 200 tools made every drift decision's answer 28 MB (0.4 s of the
   * registry's event loop), 1,000 of 1,000 held every node 128 ms per rename.
   */
  environmentPinsPerVirtualServer: 50_000,
} as const;
