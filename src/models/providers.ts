/** The providers Parley can call; a chain entry is `<provider>:<model>`. */
export const PROVIDERS = ["openai", "anthropic", "google", "openai-compatible", "ollama", "meta"] as const;
export type ProviderName = (typeof PROVIDERS)[number];

export interface ModelRef {
  provider: ProviderName;
  model: string;
}

export function refId(ref: ModelRef): string {
  return `${ref.provider}:${ref.model}`;
}
