/**
 * A minimal MCP Apps host for the browser tests, built on ext-apps' own `AppBridge`.
 *
 * It connects the MCP TypeScript client to the server over streamable HTTP (same origin:
 * `/mcp` on the page's server), plays the model by calling tools, and when a tool names
 * a `ui://` view it reads that resource, checks its MIME type, renders it in a sandboxed
 * iframe (scripts only, opaque origin) under a CSP built from the resource's
 * `_meta.ui.csp`, forwards the tool input and result, and proxies the view's tool calls,
 * refusing tools the view may not call. Everything it sees is kept in `events` for the
 * test driver, which uses `window.studioHost`.
 */

import {
  AppBridge,
  type McpUiHostContext,
  type McpUiResourceCsp,
  type McpUiStyles,
  PostMessageTransport,
  RESOURCE_MIME_TYPE,
  getToolUiResourceUri,
  isToolVisibilityAppOnly,
  isToolVisibilityModelOnly,
} from "@modelcontextprotocol/ext-apps/app-bridge";
import {
  type CallToolResult,
  Client,
  StreamableHTTPClientTransport,
  type Tool,
} from "@modelcontextprotocol/client";

type Theme = "light" | "dark";

interface HostEvent {
  type: string;
  [key: string]: unknown;
}

const HOST_INFO = { name: "nemo-mcp test host", version: "1.0.0" };

/** Host style variables, so the test can see the view use the host's theme. */
const STYLES: Record<Theme, Partial<McpUiStyles>> = {
  light: {
    "--color-background-primary": "rgb(253, 252, 248)",
    "--color-text-primary": "rgb(20, 24, 38)",
  },
  dark: {
    "--color-background-primary": "rgb(16, 20, 31)",
    "--color-text-primary": "rgb(232, 236, 245)",
  },
};

const events: HostEvent[] = [];
let client: Client | null = null;
let tools = new Map<string, Tool>();
let bridge: AppBridge | null = null;
let frame: HTMLIFrameElement | null = null;
let theme: Theme = "light";

function record(event: HostEvent): void {
  events.push({ ...event, at: performance.now() });
}

function status(text: string): void {
  const node = document.getElementById("host-status");
  if (node !== null) node.textContent = text;
}

/** Only origins: anything that could break out of a CSP source list is dropped. */
function sources(domains: string[] | undefined): string {
  const origin = /^[a-z]+:\/\/[^\s;'",]+$/i;
  return (domains ?? []).filter((d) => typeof d === "string" && origin.test(d)).join(" ");
}

/** The view's CSP: the declared domains and inline code, nothing else (no 'self'). */
function cspFor(csp: McpUiResourceCsp | undefined): string {
  const resources = sources(csp?.resourceDomains);
  const connect = sources(csp?.connectDomains);
  return [
    "default-src 'none'",
    `script-src 'unsafe-inline' ${resources}`.trim(),
    `style-src 'unsafe-inline' ${resources}`.trim(),
    `img-src data: blob: ${resources}`.trim(),
    `media-src data: blob: ${resources}`.trim(),
    `font-src data: ${resources}`.trim(),
    `connect-src ${connect || "'none'"}`,
    "frame-src 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join("; ");
}

function withCsp(html: string, policy: string): string {
  const meta = document.createElement("meta");
  meta.httpEquiv = "Content-Security-Policy";
  meta.content = policy;
  const head = /<head[^>]*>/i.exec(html);
  if (head === null) throw new Error("the view's HTML has no <head>");
  const at = head.index + head[0].length;
  return html.slice(0, at) + meta.outerHTML + html.slice(at);
}

function context(tool: Tool | null): McpUiHostContext {
  return {
    theme,
    styles: { variables: STYLES[theme] as McpUiStyles },
    displayMode: "inline",
    availableDisplayModes: ["inline"],
    platform: "web",
    locale: "en-US",
    containerDimensions: { width: 880, maxHeight: 4000 },
    ...(tool !== null ? { toolInfo: { tool } } : {}),
  };
}

async function connect(mode: "legacy" | "auto"): Promise<string[]> {
  client = new Client(HOST_INFO, {
    capabilities: {
      extensions: { "io.modelcontextprotocol/ui": { mimeTypes: [RESOURCE_MIME_TYPE] } },
    },
    versionNegotiation: { mode },
  });
  await client.connect(new StreamableHTTPClientTransport(new URL("/mcp", location.href)));
  const listed = await client.listTools();
  tools = new Map(listed.tools.map((tool) => [tool.name, tool]));
  record({ type: "connected", mode, tools: [...tools.keys()] });
  status("connected");
  return [...tools.keys()];
}

/** The tools the model is shown: every tool but those only the view may call. */
function modelTools(): string[] {
  return [...tools.values()].filter((t) => !isToolVisibilityAppOnly(t)).map((t) => t.name);
}

function connected(): Client {
  if (client === null) throw new Error("call studioHost.connect() first");
  return client;
}

async function readView(uri: string): Promise<{ html: string; csp: McpUiResourceCsp | undefined }> {
  const answer = await connected().readResource({ uri });
  const content = answer.contents[0];
  if (answer.contents.length !== 1 || content === undefined) {
    throw new Error(`${uri}: expected one content item`);
  }
  if (content.mimeType !== RESOURCE_MIME_TYPE) {
    throw new Error(`${uri}: served as ${content.mimeType}`);
  }
  if (!("text" in content)) throw new Error(`${uri}: not text`);
  const ui = (content._meta as { ui?: { csp?: McpUiResourceCsp } } | undefined)?.ui;
  record({ type: "resource", uri, bytes: content.text.length, csp: ui?.csp ?? null });
  return { html: content.text, csp: ui?.csp };
}

/** The view's tool calls: only tools it may call reach the server. */
async function proxyCall(
  name: string,
  args: Record<string, unknown> | undefined,
): Promise<CallToolResult> {
  const tool = tools.get(name);
  if (tool === undefined || isToolVisibilityModelOnly(tool)) {
    record({ type: "view-call-refused", name });
    return { content: [{ type: "text", text: `The view may not call ${name}.` }], isError: true };
  }
  record({ type: "view-call", name, args: args ?? {} });
  const result = (await connected().callTool({ name, arguments: args ?? {} })) as CallToolResult;
  record({ type: "view-call-done", name, isError: result.isError === true });
  return result;
}

async function openView(tool: Tool, uri: string): Promise<AppBridge> {
  const { html, csp } = await readView(uri);
  const policy = cspFor(csp);
  const views = document.getElementById("views");
  if (views === null) throw new Error("the host page has no #views");
  await bridge?.close();
  frame?.remove();
  frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("title", "studio");
  frame.style.cssText = "display:block;width:100%;height:200px;border:0;background:transparent";
  frame.srcdoc = withCsp(html, policy);
  views.append(frame);
  const view = frame;
  const next = new AppBridge(
    null,
    HOST_INFO,
    { serverTools: {}, openLinks: {}, logging: {} },
    { hostContext: context(tool) },
  );
  next.oncalltool = (params) => proxyCall(params.name, params.arguments);
  next.onopenlink = async ({ url }) => {
    record({ type: "open-link", url });
    return {};
  };
  next.onsizechange = ({ width, height }) => {
    record({ type: "size", width: width ?? null, height: height ?? null });
    if (height !== undefined) view.style.height = `${height}px`;
  };
  next.onloggingmessage = (params) =>
    record({ type: "view-log", level: params.level, data: params.data });
  const initialized = new Promise<void>((resolve) => {
    next.oninitialized = () => {
      record({ type: "initialized" });
      resolve();
    };
  });
  if (view.contentWindow === null) throw new Error("the view's frame has no window");
  await next.connect(new PostMessageTransport(view.contentWindow, view.contentWindow));
  record({ type: "view-opened", uri, csp: policy });
  bridge = next;
  await initialized;
  return next;
}

/** What the model does: call a tool, and show its view with the result when it has one. */
async function callAsModel(
  name: string,
  args: Record<string, unknown> = {},
): Promise<CallToolResult> {
  const tool = tools.get(name);
  if (tool === undefined || isToolVisibilityAppOnly(tool)) {
    throw new Error(`the model has no tool ${name}`);
  }
  const uri = getToolUiResourceUri(tool);
  const pending = connected().callTool({ name, arguments: args }) as Promise<CallToolResult>;
  record({ type: "model-call", name, args, view: uri ?? null });
  if (uri === undefined) return pending;
  const view = await openView(tool, uri);
  await view.sendToolInput({ arguments: args });
  const result = await pending;
  await view.sendToolResult(result);
  record({ type: "tool-result-sent", name, isError: result.isError === true });
  return result;
}

function setTheme(next: Theme): void {
  theme = next;
  bridge?.setHostContext(context(null));
  record({ type: "theme", theme: next });
}

async function sendToolResult(result: CallToolResult): Promise<void> {
  if (bridge === null) throw new Error("no view is open");
  await bridge.sendToolResult(result);
}

const api = {
  connect,
  modelTools,
  allTools: (): Tool[] => [...tools.values()],
  callAsModel,
  setTheme,
  sendToolResult,
  events,
  frameHeight: (): number => frame?.getBoundingClientRect().height ?? 0,
};

declare global {
  interface Window {
    studioHost: typeof api;
  }
}

window.studioHost = api;
status("ready");
