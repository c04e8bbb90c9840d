import { describe, expect, it } from "vitest";
import {
  ALBUM_ONLY_PROMPT,
  buildModelMessages,
  IMAGE_ONLY_PROMPT,
  imagePlaceholder,
  mediaToLoad,
  planHistoryImages,
  type MediaTurn,
} from "../src/media/prompt-parts.ts";
import type { StoredMedia } from "../src/media/store.ts";

const user = (text: string, ...media: string[]): MediaTurn => ({ role: "user", text, media });
const assistant = (text: string): MediaTurn => ({ role: "assistant", text, media: [] });

function stored(id: string, width = 1024, height = 768, mimeType = "image/jpeg"): StoredMedia {
  return { sha256: id, mimeType, width, height, bytes: 3, data: Uint8Array.from([id.charCodeAt(0), 1, 2]) };
}

describe("planHistoryImages", () => {
  it.each([
    ["only the newest turn has an image", [user("a", "x")], 2, [true]],
    ["images of the two user turns before the newest stay", [user("", "a"), assistant("1"), user("", "b"), assistant("2"), user("", "c"), assistant("3"), user("now")], 2, [false, false, true, false, true, false, false]],
    ["zero keeps only the newest turn's images", [user("", "a"), assistant("1"), user("", "b")], 0, [false, false, true]],
    ["turns without media carry nothing", [user("hi"), assistant("hello"), user("again")], 2, [false, false, false]],
    ["a larger setting reaches further back", [user("", "a"), assistant("1"), user("t"), assistant("2"), user("t")], 3, [true, false, false, false, false]],
  ] as const)("%s", (_name, turns, n, expected) => {
    expect(planHistoryImages(turns, n)).toEqual(expected);
  });
});

describe("mediaToLoad", () => {
  it("loads bytes only for turns that carry images, and an id once", () => {
    const turns = [user("", "old1", "old2"), assistant("ok"), user("", "mid"), assistant("ok"), user("", "new", "old1")];
    expect(mediaToLoad(turns, 1)).toEqual({ withData: ["mid", "new", "old1"], infoOnly: ["old2"] });
  });
});

describe("buildModelMessages", () => {
  it("sends an album of three as three image parts of one user message", () => {
    const turns = [user("which one is best?", "a", "b", "c")];
    const media = new Map([["a", stored("a")], ["b", stored("b", 800, 600, "image/png")], ["c", stored("c")]]);
    const messages = buildModelMessages(turns, media, 2);
    expect(messages).toEqual([
      {
        role: "user",
        content: [
          { type: "text", text: "which one is best?" },
          { type: "image", image: media.get("a")!.data, mediaType: "image/jpeg" },
          { type: "image", image: media.get("b")!.data, mediaType: "image/png" },
          { type: "image", image: media.get("c")!.data, mediaType: "image/jpeg" },
        ],
      },
    ]);
  });

  it("asks about an image or an album that came without a caption", () => {
    const one = buildModelMessages([user("", "a")], new Map([["a", stored("a")]]), 2);
    expect(one[0]!.content).toEqual([{ type: "text", text: IMAGE_ONLY_PROMPT }, expect.objectContaining({ type: "image" })]);
    expect(IMAGE_ONLY_PROMPT).toBe("Describe or respond to this image.");
    const album = buildModelMessages([user("  ", "a", "b")], new Map([["a", stored("a")], ["b", stored("b")]]), 2);
    expect((album[0]!.content as Array<{ type: string; text?: string }>)[0]).toEqual({ type: "text", text: ALBUM_ONLY_PROMPT });
  });

  it("turns images of older turns into placeholders and keeps text turns plain", () => {
    const turns = [
      user("my cat", "cat"),
      assistant("Cute!"),
      user("and this?", "dog"),
      assistant("A dog."),
      user("thanks"),
      assistant("You're welcome."),
      user("what colour was the cat?"),
    ];
    const media = new Map<string, StoredMedia>([["cat", stored("cat", 1024, 768)], ["dog", stored("dog")]]);
    const messages = buildModelMessages(turns, media, 2);
    expect(messages[0]).toEqual({ role: "user", content: "my cat\n[image: 1024×768 photo sent earlier]" });
    expect(messages[1]).toEqual({ role: "assistant", content: "Cute!" });
    expect(messages[2]!.content).toEqual([
      { type: "text", text: "and this?" },
      { type: "image", image: media.get("dog")!.data, mediaType: "image/jpeg" },
    ]);
    expect(messages[4]).toEqual({ role: "user", content: "thanks" });
    expect(messages[6]).toEqual({ role: "user", content: "what colour was the cat?" });
  });

  it("uses a placeholder when a chosen image was loaded without bytes or is gone", () => {
    const info = { sha256: "a", mimeType: "image/jpeg", width: 640, height: 480, bytes: 10 };
    expect(buildModelMessages([user("", "a", "gone")], new Map([["a", info]]), 2)).toEqual([
      { role: "user", content: "[image: 640×480 photo sent earlier]\n[image no longer available]" },
    ]);
    expect(imagePlaceholder(undefined)).toBe("[image no longer available]");
  });
});
