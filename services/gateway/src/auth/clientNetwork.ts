import ipaddr from "ipaddr.js";

/**
 * The caller a client address stands for, where an address is the identity a bound is kept by.
 * An IPv6 customer is given a /64 at least (2^64 addresses; RFC 6177), and picks any of them for
 * each connection: keyed by address, 200 forged JWTs from one /64 were 200 callers with a share
 * each. So an IPv6 address counts as its /64, and an IPv4-mapped one (`::ffff:a.b.c.d`, what a
 * dual-stack listener sees of an IPv4 client) as that IPv4 address. Parsed with the parser fastify's
 * proxy-addr reads `X-Forwarded-For` with; a string it does not parse is its own key.
 */
export function clientNetwork(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed instanceof ipaddr.IPv4) return parsed.toString();
  return `${new ipaddr.IPv6([...parsed.parts.slice(0, 4), 0, 0, 0, 0]).toString()}/64`;
}
