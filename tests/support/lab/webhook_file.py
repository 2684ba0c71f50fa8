"""A webhook receiver to run inside a lab namespace: appends each POSTed JSON body as one
line to a file the test reads (the file system is shared across namespaces).

    ip netns exec NS python -m tests.support.lab.webhook_file --port 9000 --out received.jsonl
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    async def receive(request: web.Request) -> web.Response:
        body = await request.json()
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps(body, ensure_ascii=False) + "\n")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
