import { afterEach, beforeEach } from "vitest";
import { startFakeOpenAIServer, type FakeOpenAIServer } from "../fakes/openai-server.ts";
import { startFakeTelegram, type FakeTelegram } from "../fakes/telegram-api.ts";
import { createTestDatabase, type DatabaseKind, type TestDatabase } from "./databases.ts";

/** What an end-to-end test through Telegram needs around a Parley: a database of its own and the two fakes. */
export interface Scene {
  db: TestDatabase;
  telegram: FakeTelegram;
  model: FakeOpenAIServer;
}

export async function openScene(kind: DatabaseKind): Promise<Scene> {
  const db = await createTestDatabase(kind);
  const [telegram, model] = await Promise.all([startFakeTelegram(), startFakeOpenAIServer()]);
  return { db, telegram, model };
}

/** Closes the fakes and drops the database (stop the Parley first). */
export async function closeScene(scene: Scene): Promise<void> {
  await Promise.all([scene.telegram.close(), scene.model.close()]);
  await scene.db.drop();
}

/**
 * A fresh scene for every test of the calling suite: `scene.db`, `scene.telegram` and `scene.model` are set before each
 * test; a Parley the test puts in `scene.parley` is stopped after it, then the scene is closed.
 */
export function useScene(kind: DatabaseKind): Scene & { parley?: { stop(): Promise<void> } } {
  const scene = {} as Scene & { parley?: { stop(): Promise<void> } };
  beforeEach(async () => {
    Object.assign(scene, await openScene(kind));
  });
  afterEach(async () => {
    await scene.parley?.stop();
    scene.parley = undefined;
    await closeScene(scene);
  });
  return scene;
}

/** The settings that connect a Parley to a scene: its Telegram bot, `modelName` on its fake model, open to anyone. */
export function sceneEnv(scene: Pick<Scene, "telegram" | "model">, modelName: string): Record<string, string> {
  return {
    TELEGRAM_BOT_TOKEN: scene.telegram.token,
    TELEGRAM_API_ROOT: scene.telegram.url,
    MODELS_INSTANT: `openai-compatible:${modelName}`,
    OPENAI_COMPATIBLE_BASE_URL: `${scene.model.url}/v1`,
    ACCESS_POLICY: "open",
  };
}
