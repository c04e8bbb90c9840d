// What Meta's Model API refuses with HTTP 400, per its published wire rules (Meta's docs as quoted by its integrators:
// Google Cloud's Muse Spark 1.3 and Muse Ember 1.0 model cards, LiteLLM, promptfoo): reasoning effort only minimal,
// low, medium, high or xhigh (`none` is rejected: Muse Spark always reasons); `tool_choice` only `auto`; no stateful
// response storage (`store: true`). Stop sequences are not honoured; the fake refuses them too, so a test sees them.
import { isRecord } from "./openai-script.ts";

const EFFORTS = ["minimal", "low", "medium", "high", "xhigh"];

/** The error message Meta would answer a Responses API body with, or undefined when it keeps the rules. */
export function metaRefusal(body: unknown): string | undefined {
  if (!isRecord(body)) return undefined;
  const effort = isRecord(body.reasoning) ? body.reasoning.effort : undefined;
  if (effort !== undefined && !EFFORTS.includes(String(effort))) {
    return `Invalid value for 'reasoning.effort': '${String(effort)}'. Supported values are: ${EFFORTS.join(", ")}.`;
  }
  if (body.tool_choice !== undefined && body.tool_choice !== "auto") {
    return `Invalid value for 'tool_choice': only 'auto' is supported.`;
  }
  if (body.stop !== undefined) return "Unsupported parameter: 'stop' is not supported with this model.";
  if (body.store === true) return "Stateful responses ('store': true) are not supported.";
  return undefined;
}
