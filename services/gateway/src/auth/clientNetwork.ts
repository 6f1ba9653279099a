import ipaddr from "ipaddr.js";

/**
 * The caller a client address stands for, where an address is the identity a bound is kept by.
 * An IPv6 customer is given a /64 at least (2^64 addresses; RFC 6177), and picks any of them for
 * each connection: keyed by address, 200 forged JWTs from one /64 were 200 callers with a share
 * each. So an IPv6 address counts as its /64, and one that carries an IPv4 client's address as that
 * address: IPv4-mapped (`::ffff:a.b.c.d`, what a dual-stack listener sees of an IPv4 client) and
 * NAT64's well-known prefix (`64:ff9b::a.b.c.d`, RFC 6052: what an IPv6-only gateway sees of every
 * IPv4 client), whose /64 made all of them one caller. Parsed with the parser fastify's proxy-addr
 * reads `X-Forwarded-For` with; a string it does not parse is its own key, but for an
 * address with its port (`withoutPort`).
 */
export function clientNetwork(forwarded: string): string {
  const address = ipaddr.isValid(forwarded) ? forwarded : withoutPort(forwarded);
  if (!ipaddr.isValid(address)) return forwarded;
  const parsed = ipaddr.process(address);
  if (parsed instanceof ipaddr.IPv4) return parsed.toString();
  if (parsed.range() === "rfc6052") return ipaddr.fromByteArray(parsed.toByteArray().slice(12)).toString();
  return `${new ipaddr.IPv6([...parsed.parts.slice(0, 4), 0, 0, 0, 0]).toString()}/64`;
}

/**
 * Some proxies forward the client with its source port (Azure Application Gateway:
 * `192.0.2.7:40001`, `[2001:db8::1]:443`), which proxy-addr hands on as it is: kept, each of one
 * client's connections was a caller of its own (8 connections, 8 calls in flight past a bound of 4).
 */
const WITH_PORT = /^(?:\[([^\]]+)\]|(\d{1,3}(?:\.\d{1,3}){3}))(?::\d{1,5})?$/;
const withoutPort = (address: string): string => {
  const match = WITH_PORT.exec(address);
  return match ? (match[1] ?? match[2])! : address;
};
