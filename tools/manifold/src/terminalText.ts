/**
 * Control and format characters: C0 (ESC, BEL, CR…), DEL, C1 (CSI, OSC…), and the invisible or
 * reordering ones (bidirectional controls, zero-width, tag characters).
 */
const UNSAFE = /[\p{Cc}\p{Cf}]/gu;

/**
 * Text from upstreams or callers as a terminal line may show it: each control or format character
 * written as its JSON-style escape (`\u001b`). An upstream names its tools as it likes, and
 * `manifold audit` and `discover` printed the names raw: escape sequences in one erased the line
 * and wrote a forged record, retitled the window, or set the clipboard (OSC 52); U+202E read it backwards.
 */
export const shown = (text: string): string =>
  text.replace(UNSAFE, (c) => {
    const code = c.codePointAt(0)!;
    return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
