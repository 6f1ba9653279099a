import { expect, test } from "vitest";
import { clientNetwork } from "./clientNetwork.js";

test("every address of one IPv6 /64, however spelled, is one caller; the next /64 is another", () => {
  const keys = new Set(["2001:db8:1:2::1", "2001:0db8:0001:0002:ffff:ffff:ffff:ffff", "2001:DB8:1:2:0:0:0:7", "fe80::1%eth0"].map(clientNetwork));
  expect([...keys]).toEqual(["2001:db8:1:2::/64", "fe80::/64"]);
  expect(clientNetwork("2001:db8:1:3::1")).not.toBe(clientNetwork("2001:db8:1:2::1"));
});

test("an IPv4-mapped address is its IPv4 address; an IPv4 address and an unparsed string are themselves", () => {
  expect(clientNetwork("::ffff:192.0.2.9")).toBe("192.0.2.9");
  expect(clientNetwork("::ffff:c000:209")).toBe("192.0.2.9");
  expect(clientNetwork("192.0.2.10")).toBe("192.0.2.10");
  expect(clientNetwork("not an address")).toBe("not an address");
});
