/**
 * A cheap token estimate: about four characters a token for Latin text, one a token for CJK, plus a few tokens of
 * framing per message. Close enough to budget a prompt; exact counts come back from the provider and are recorded.
 */
export function estimateTokens(text: string): number {
  let cjk = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    if ((c >= 0x3000 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af) || (c >= 0xf900 && c <= 0xfaff)) cjk++;
  }
  return Math.ceil((text.length - cjk) / 4) + cjk + 4;
}
