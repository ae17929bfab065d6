"""HTTP and WebSocket routers: thin layers that parse, call the pipeline and serialize."""
