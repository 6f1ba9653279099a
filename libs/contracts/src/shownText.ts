/**
 * Text someone else wrote (an agent's names, an upstream's messages and schemas), shown back cut
 * to `max` characters and marked with an ellipsis when it was: an answer or a view is not an amplifier.
 */
export const cutText = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max)}…` : text);
