import type { Tool } from "ai";
import type { PublicFetchOptions } from "./public-fetch.ts";

/**
 * A tool the model may call, through the AI SDK tool interface. To add one, write src/tools/<name>.ts exporting a
 * `ToolDefinition` and list it in registry.ts; the operator turns it on with TOOLS=<name>,… . Only models whose
 * capability says tools are offered tools. A tool's output goes back to the model, never straight to the user; a
 * thrown error is shown to the model as the tool's error and recorded in model_calls.tools.
 */
export interface ToolDefinition {
  /** snake_case; what TOOLS lists and what the model sees. */
  name: string;
  create(deps: ToolDeps): Tool;
}

export interface ToolDeps {
  now(): Date;
  /** The user's time zone when known; DEFAULT_TIMEZONE until then. */
  timeZone: string;
  /** For tools that fetch from the web: DNS, the address policy, limits. Tests inject a resolver. */
  web?: Partial<PublicFetchOptions>;
}
