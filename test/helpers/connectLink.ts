import { rpcError } from "./catalog.js";
import { connectWithKey } from "./mcp.js";

/** The connect link a consumer's call of an OAuth upstream's tool is answered with (no account connected yet). */
export async function connectLinkFor(endpoint: string, key: string, tool: string): Promise<string> {
  await using client = await connectWithKey(endpoint, key);
  const refusal = await rpcError(client.callTool({ name: tool, arguments: {} }));
  return (refusal.data.elicitations as { url: string }[])[0]!.url;
}

/**
 * A user's browser on a connect link, with its own cookie jar (cookies are per host, as a
 * browser keeps them; every server here is 127.0.0.1): opens the link, reads the confirmation
 * page and confirms it. The jar is what ties the later callback to this browser.
 */
export class Browser {
  readonly #jar = new Map<string, string>();

  get cookie(): string {
    return [...this.#jar].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (this.#jar.size > 0) headers.set("cookie", this.cookie);
    const res = await fetch(url, { ...init, headers, redirect: "manual" });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const at = pair!.indexOf("=");
      this.#jar.set(pair!.slice(0, at).trim(), pair!.slice(at + 1));
    }
    return res;
  }

  /** Opens the link: the confirmation page, and the form it asks the user to submit. */
  async open(link: string): Promise<{ status: number; text: string; form: { action: string; fields: Record<string, string> } | undefined }> {
    const res = await this.fetch(link);
    const text = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(text)?.[1];
    const fields = Object.fromEntries([...text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    return { status: res.status, text, form: action ? { action: new URL(action, link).href, fields } : undefined };
  }

  /** Submits the confirmation: the answer (a redirect to the authorization server when accepted). */
  async confirm(form: { action: string; fields: Record<string, string> }): Promise<Response> {
    return this.fetch(form.action, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form.fields).toString() });
  }

  /** Opens the link and confirms it: the authorization server's URL it was sent to. */
  async openAndConfirm(link: string): Promise<string> {
    const page = await this.open(link);
    if (!page.form) throw new Error(`the connect link showed no confirmation (HTTP ${page.status}): ${page.text.slice(0, 300)}`);
    const answer = await this.confirm(page.form);
    const location = answer.headers.get("location");
    if (answer.status !== 303 || !location) throw new Error(`the confirmation was refused (HTTP ${answer.status}): ${(await answer.text()).slice(0, 300)}`);
    return location;
  }
}
