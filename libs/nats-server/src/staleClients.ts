/**
 * How soon nats-server gives up on a client that stopped reading without closing (a process
 * frozen, a VM paused, a partition that drops packets with no reset): a PING every 2 s, the
 * connection closed after 2 go unanswered, 4–6 s in all. With nats-server's defaults (2 min, 2) a
 * frozen connector replica kept its queue-group share of its upstream's calls for minutes, each
 * lost after the gateway's silence window (half of all calls, measured: connectorFrozen.e2e).
 * Every deployed config and every server the tests start carries these lines (deployFiles.unit).
 */
export const STALE_CLIENT_LINES = ['ping_interval: "2s"', "ping_max: 2"] as const;
