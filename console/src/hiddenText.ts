import { options, type VNode } from "preact";

/**
 * Characters that show as nothing, or move what is shown, yet reach an agent as text (the set the
 * registry names in a drift's reasons: libs/domain/src/definitionText.ts). An upstream's sentence in
 * Unicode tag characters read "A safe tool" on both sides of a drift review; wherever the console
 * shows an upstream's text, each such character is shown as a visible ⟨U+XXXX⟩ mark instead.
 */
const HIDDEN = /(?![\t\n\r])[\p{Cc}\p{Cf}\p{Co}\p{Default_Ignorable_Code_Point}]/gu;

const mark = (c: string) => `⟨U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}⟩`;

/** The text with every hidden character shown as its code point. */
const revealHidden = (text: string): string => text.replace(HIDDEN, mark);

/**
 * Marks hidden characters in every text the console renders, whichever page and whatever field:
 * marking them where each page showed an upstream's text missed tool names, server versions and
 * the descriptions agents see (a name in U+202E read reversed). Preact hands each text child to
 * `options.vnode` as a vnode without a type whose props are the text.
 */
export function revealHiddenInEveryText(): void {
  const next = options.vnode;
  options.vnode = (vnode: VNode) => {
    if (vnode.type === null && typeof vnode.props === "string") (vnode as { props: unknown }).props = revealHidden(vnode.props);
    next?.(vnode);
  };
}
