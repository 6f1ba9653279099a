import ipaddr from "ipaddr.js";

/**
 * The caller a client address stands for, where an address is the identity a bound is kept by.
 * An IPv6 customer is given a /64 at least (2^64 addresses; RFC 6177), and picks any of them for
 * each connection: keyed by address, 200 forged JWTs from one /64 were 200 callers with a share
 * each. So an IPv6 address counts as its /64, and one that carries an IPv4 client's address as that
 * address: IPv4-mapped (`::ffff:a.b.c.d`, what a dual-stack listener sees of an IPv4 client) and
 * NAT64's well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052: what an IPv6-only gateway sees of every
 * IPv4 client), whose /64 made all of them one caller. Parsed with the parser fastify's proxy-addr
 * reads `X-Forwarded-For` with; a string it does not parse is its own key.
 */
export function clientNetwork(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const parsed = ipaddr.process(address);
  if (parsed instanceof ipaddr.IPv4) return parsed.toString();
  if (parsed.range() === "rfc6052") return ipaddr.fromByteArray(parsed.toByteArray().slice(12)).toString();
  return `${new ipaddr.IPv6([...parsed.parts.slice(0, 4), 0, 0, 0, 0]).toString()}/64`;
}
