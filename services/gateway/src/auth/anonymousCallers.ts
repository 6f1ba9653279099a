import { anonymousPrincipal, type Principal } from "@manifold/domain";
import { clientNetwork } from "./clientNetwork.js";

/** One principal object per client address, made once rather than per request. */
const byAddress = new Map<string, Principal>();

/**
 * The principal of a caller without credentials at a client address (`request.ip`: the TCP peer's,
 * or the forwarded client's from a proxy named in `GATEWAY_TRUST_PROXY`): one caller per client
 * network (`clientNetwork`: an IPv6 /64 is one). The same object for the same address, so what is
 * cached per principal object (admissions) is found again. No address (a stream checked again, whose
 * access alone is read): the empty network.
 */
export function anonymousCaller(address = ""): Principal {
  let principal = byAddress.get(address);
  if (principal === undefined) {
    // Bounded: past it the principals are made again; only the objects differ, never the ids.
    if (byAddress.size >= 10_000) byAddress.clear();
    byAddress.set(address, (principal = anonymousPrincipal(clientNetwork(address))));
  }
  return principal;
}
