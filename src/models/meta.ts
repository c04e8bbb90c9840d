/**
 * Meta's Model API, which serves Muse Spark (public preview): where it is and what its model names say. Its wire rules
 * are in wire-rules.ts, its models' capabilities and prices in the tables beside this file.
 */

export const META_MODEL_API_URL = "https://api.meta.ai/v1";

/**
 * `muse-spark-1.2-contributor` and the like: priced far lower because Meta may train on their traffic. Refused at
 * start unless META_ALLOW_CONTRIBUTOR_MODELS=true, since that traffic is the users' private messages.
 */
export function isContributorModel(model: string): boolean {
  return /-contributor$/i.test(model.trim());
}

/** The Llama API preview (api.llama.com) that Meta retired on 2026-07-06. */
export function isRetiredLlamaApi(baseURL: string): boolean {
  try {
    const host = new URL(baseURL).hostname.toLowerCase().replace(/\.$/, "");
    return host === "llama.com" || host.endsWith(".llama.com");
  } catch {
    return false;
  }
}
