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

test("a NAT64 address (64:ff9b::/96) is the IPv4 client it carries, not one /64 for every IPv4 client", () => {
  expect(clientNetwork("64:ff9b::1.2.3.4")).toBe("1.2.3.4");
  expect(clientNetwork("64:ff9b::506:708")).toBe("5.6.7.8");
  // Outside the /96 (64:ff9b:0:0:1::), an ordinary IPv6 /64.
  expect(clientNetwork("64:ff9b::1:0:102:304")).toBe("64:ff9b::/64");
});

test("an address a proxy forwarded with its port is that address's network; anything else stays itself", () => {
  expect(clientNetwork("192.0.2.7:40001")).toBe("192.0.2.7");
  expect(clientNetwork("[2001:db8:1:2::9]:443")).toBe("2001:db8:1:2::/64");
  expect(clientNetwork("[::ffff:192.0.2.7]:1")).toBe("192.0.2.7");
  expect(clientNetwork("[2001:db8:1:2::9]")).toBe("2001:db8:1:2::/64");
  expect(clientNetwork("999.0.2.7:1")).toBe("999.0.2.7:1");
  expect(clientNetwork("[not an address]:1")).toBe("[not an address]:1");
});
