import { consumerId, principalName, subjectPrincipalId } from "@manifold/domain";
import { expect, test } from "vitest";
import { anonymousCaller } from "./anonymousCallers.js";
import { callerDigest } from "../interactions.js";

test("each client network without credentials is its own caller, on the bus too; one /64 is one caller", () => {
  const ids = ["127.0.0.2", "127.0.0.3", "::ffff:127.0.0.2", "2001:db8:1:2::1", "2001:db8:1:2::9", "2001:db8:1:3::1"].map((address) => anonymousCaller(address).id);
  expect(ids).toEqual(["anonymous:127.0.0.2", "anonymous:127.0.0.3", "anonymous:127.0.0.2", "anonymous:2001:db8:1:2::/64", "anonymous:2001:db8:1:2::/64", "anonymous:2001:db8:1:3::/64"]);
  expect(callerDigest(anonymousCaller("127.0.0.2"))).not.toBe(callerDigest(anonymousCaller("127.0.0.3")));
  expect(callerDigest(anonymousCaller("127.0.0.2"))).toHaveLength(22);
});

test("an anonymous caller is never confused with a consumer or a token subject, and records never name its address", () => {
  const caller = anonymousCaller("192.0.2.7");
  expect(caller).toMatchObject({ anonymous: true, groups: [] });
  expect(caller.consumer).toBeUndefined();
  // Consumer ids start `consumer:`, token subjects `sub:`: no name a consumer or an issuer can choose makes `anonymous:`.
  expect(caller.id).not.toBe(consumerId({ name: "anonymous", created: 1 }));
  expect(caller.id.startsWith("anonymous:") && !consumerId({ name: "x", created: 1 }).startsWith("anonymous:") && !subjectPrincipalId("anonymous:", "x").startsWith("anonymous:")).toBe(true);
  expect(principalName(caller)).toBe("anonymous");
});

test("one principal object per address, so what is cached per principal is found again", () => {
  expect(anonymousCaller("198.51.100.1")).toBe(anonymousCaller("198.51.100.1"));
  expect(anonymousCaller()).toBe(anonymousCaller(""));
});
