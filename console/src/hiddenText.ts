/**
 * Characters that show as nothing, or move what is shown, yet reach an agent as text (the set the
 * registry names in a drift's reasons: libs/domain/src/definitionText.ts). An upstream's sentence in
 * Unicode tag characters read "A safe tool" on both sides of a drift review; wherever the console
 * shows an upstream's text, each such character is shown as a visible ⟨U+XXXX⟩ mark instead.
 */
const HIDDEN = /(?![\t\n\r])[\p{Cc}\p{Cf}\p{Co}\u{FE00}-\u{FE0F}\u{E0100}-\u{E01EF}]/gu;

const mark = (c: string) => `⟨U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}⟩`;

/** The text with every hidden character shown as its code point. */
export const revealHidden = (text: string): string => text.replace(HIDDEN, mark);
