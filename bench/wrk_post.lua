-- One JSON-RPC POST per request; body and session come from the environment.
wrk.method = "POST"
wrk.body = os.getenv("MCP_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-06-18"
local auth = os.getenv("MCP_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end
local sid = os.getenv("MCP_SESSION")
if sid ~= nil and sid ~= "" then
  wrk.headers["Mcp-Session-Id"] = sid
end
