import { MAX_URI_LENGTH, ResourceName, type Naming } from "@manifold/contracts";

/**
 * How a virtual server names an upstream's resources: `<upstream>+<original URI>`, the upstream
 * being the logical name the selection uses (the same in every environment). RFC 3986 allows
 * `+` in a scheme (`demo://x` becomes `files+demo://x`); upstream names never contain `+`
 * (DNS-label characters only), so the first `+` splits an exposed URI back, whatever the
 * original holds (`git+ssh://…` included). Two upstreams' `file:///README.md` stay apart, and
 * `resources/read` reaches the owner. Templates map the same way (`files+demo://{id}`).
 *
 * A virtual server whose naming policy is `bare` exposes URIs unchanged, as it does tool names:
 * its selections then refuse two upstreams' same URI (or template) as a collision.
 *
 * Both directions refuse what does not parse back: an original without a scheme, anything
 * longer than `MAX_URI_LENGTH`, an exposed URI without `+` or naming no valid upstream.
 */

/** A scheme as RFC 3986 §3.1 writes it, then `:`. */
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** An upstream name as Manifold allows it (ResourceName), which never contains `+`. */
const isUpstreamName = (name: string) => ResourceName.safeParse(name).success;

/** The exposed form of an upstream's URI or URI template, or undefined when the original cannot be mapped. */
export function exposeUri(upstream: string, uri: string, naming?: Pick<Naming, "policy">): string | undefined {
  if (!isUpstreamName(upstream) || !SCHEME.test(uri)) return undefined;
  if (naming?.policy === "bare") return uri.length <= MAX_URI_LENGTH ? uri : undefined;
  const exposed = `${upstream}+${uri}`;
  return exposed.length <= MAX_URI_LENGTH ? exposed : undefined;
}

/**
 * What an upstream's URI that cannot be exposed (no scheme; too long with its prefix) becomes in a
 * result: a URI of no upstream, which reads nothing. Passed through, it could name another
 * upstream's resource (`1victim+att://r/one` is no URI to prefix, and routes to `1victim`).
 */
export const UNMAPPED_URI = "manifold:unmapped";

/** The upstream and original URI an exposed URI names, or undefined when it is not one of Manifold's. */
export function parseExposedUri(exposed: string): { upstream: string; uri: string } | undefined {
  if (typeof exposed !== "string" || exposed.length > MAX_URI_LENGTH) return undefined;
  const plus = exposed.indexOf("+");
  if (plus <= 0) return undefined;
  const upstream = exposed.slice(0, plus);
  const uri = exposed.slice(plus + 1);
  return isUpstreamName(upstream) && SCHEME.test(uri) ? { upstream, uri } : undefined;
}

/** A template's parts: literal text, or an expression (`reserved`: may match `/`, `?` and `#`). */
type TemplatePart = { readonly literal: string } | { readonly reserved: boolean };

const isDelimiter = (c: number) => c === 0x2f || c === 0x3f || c === 0x23; // / ? #

/**
 * A matcher for the URIs an RFC 6570 template expands to: literal text must match exactly; a
 * simple expression (`{id}`, `{a,b}`, `{.x}`, `{;x}`, `{?x}`, `{&x}`) matches no `/`, `?` or `#`;
 * a reserved one (`{+path}`, `{#frag}`, `{/seg}`) matches any run. Undefined when the template
 * has an unbalanced brace: it then matches nothing, rather than anything.
 *
 * The URI is the agent's: it is matched in one pass per part over the positions each part can
 * end at, not by a backtracking regex (three expressions as lazy groups took ~n³ steps: a 4 KiB
 * URI held the gateway's event loop for minutes).
 */
export function templateMatcher(template: string): ((uri: string) => boolean) | undefined {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf("{", i);
    const close = open < 0 ? -1 : template.indexOf("}", open);
    const literal = template.slice(i, open < 0 ? undefined : open);
    if (literal.includes("}")) return undefined;
    if (literal) parts.push({ literal });
    if (open < 0) break;
    if (close < 0) return undefined;
    const operator = template[open + 1];
    parts.push({ reserved: operator === "+" || operator === "#" || operator === "/" });
    i = close + 1;
  }
  return (uri) => uri.length <= MAX_URI_LENGTH && matchParts(parts, uri);
}

/** Whether `uri` is the parts in order: the set of positions reached after each part, O(parts × length). */
function matchParts(parts: readonly TemplatePart[], uri: string): boolean {
  const n = uri.length;
  let reached = new Uint8Array(n + 1);
  reached[0] = 1;
  for (const part of parts) {
    const next = new Uint8Array(n + 1);
    let any = false;
    if ("literal" in part) {
      const { literal } = part;
      for (let p = 0; p + literal.length <= n; p++) {
        if (reached[p] && uri.startsWith(literal, p)) {
          next[p + literal.length] = 1;
          any = true;
        }
      }
    } else {
      // Open from any position reached, and on through every character the expression may hold.
      let open = false;
      for (let q = 0; q <= n; q++) {
        open = reached[q] === 1 || (open && (part.reserved || !isDelimiter(uri.charCodeAt(q - 1))));
        if (open) {
          next[q] = 1;
          any = true;
        }
      }
    }
    if (!any) return false;
    reached = next;
  }
  return reached[n] === 1;
}
