import type { Config } from "../config.ts";
import type { ModelRef } from "../models/providers.ts";
import type { ModeSettings } from "./types.ts";

/** The modes' settings from the configuration. */
export function modeSettingsFrom(config: Pick<Config, "models" | "contemplate" | "tools">): ModeSettings {
  const { instant, thinking, contemplating, synthesis } = config.models;
  return { chains: { instant, thinking, contemplating, synthesis }, contemplate: config.contemplate, maxSteps: config.tools.maxSteps };
}

/** Every model configured for any mode, in order, for the router's capability fallback and health. */
export function configuredModels(models: Config["models"]): ModelRef[] {
  return [...models.instant, ...models.thinking, ...models.contemplating.flat(), ...models.synthesis];
}
