"""Our own HTTP/1.1 code, and every HTTP size and time limit: the server that fronts a worker's socket,
the keep-alive client to remote backends, Server-Sent Events, and the one bridge to aiohttp's internals."""
