import type { ToolSet } from "ai";
import { calculatorTool } from "./calculator.ts";
import { timeTool } from "./time.ts";
import type { ToolDefinition, ToolDeps } from "./types.ts";
import { urlReaderTool } from "./url-reader.ts";

/** Every tool Parley knows. TOOLS picks among them (default time,calculator; url_reader needs TOOLS_URL_READER). */
export const TOOL_DEFINITIONS: readonly ToolDefinition[] = [timeTool, calculatorTool, urlReaderTool];

export const TOOL_NAMES: readonly string[] = TOOL_DEFINITIONS.map((d) => d.name);

/** The AI SDK tool set for one request, from the enabled names. */
export function createToolSet(enabled: readonly string[], deps: ToolDeps): ToolSet {
  const tools: ToolSet = {};
  for (const definition of TOOL_DEFINITIONS) {
    if (enabled.includes(definition.name)) tools[definition.name] = definition.create(deps);
  }
  return tools;
}
