"""The HTTP API (`stream-backend serve`): streams' info and their file views over HTTP,
with Range requests served through the offset index. An interface, like the CLI: it calls
the stores and never the other way round."""
