import { useState } from "preact/hooks";

/**
 * How much of one upstream's text the console lays out until asked for the rest. An upstream may
 * describe a tool in ~900 KB of combining marks: laid out whole, wherever the description was shown,
 * it held the tab ~1.5 s a page (consoleLongText.e2e); 2,000 characters read as a description does.
 */
export const SHOWN_CHARACTERS = 2_000;

/** `text`, its first `shown` characters and a count of the rest, with a button that shows it all. */
export function LongText({ text, shown = SHOWN_CHARACTERS }: { text: string; shown?: number }) {
  const [whole, setWhole] = useState(false);
  if (whole || text.length <= shown) return <>{text}</>;
  // Not cut between the two halves of a surrogate pair (a lone half would show as U+FFFD).
  const high = text.charCodeAt(shown - 1);
  const end = high >= 0xd800 && high <= 0xdbff ? shown - 1 : shown;
  return (
    <>
      {text.slice(0, end)}
      {"… "}
      <span class="muted">({(text.length - end).toLocaleString("en-US")} more characters)</span>{" "}
      <button type="button" onClick={() => setWhole(true)}>
        Show all
      </button>
    </>
  );
}
