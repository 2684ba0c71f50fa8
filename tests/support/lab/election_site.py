"""The election system's stand-in for a lab: HTTPS, answering every GET with 200 and a page,
to run inside the lab's election namespace.

    ip netns exec NS python -m tests.support.lab.election_site --address 198.18.0.2 \\
        --cert cert.pem --key key.pem

Concurrent (asyncio), as the real site is: ``openssl s_server -www`` served one connection at
a time, so a commune on a lossy line (its handshake held by TCP retransmissions for seconds)
or a slow one made every other vantage's check wait behind it, and a check from a commune
with 300 ms on its line timed out for a fault that was not its own.
"""

from __future__ import annotations

import argparse
import ssl

from aiohttp import web

PAGE = "<!doctype html><title>congtaidaibieu (lab)</title><p>lab stand-in</p>"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.lab.election_site")
    parser.add_argument("--address", required=True)
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    web.run_app(app, host=args.address, port=args.port, ssl_context=context, print=None,
                access_log=None)


if __name__ == "__main__":
    main()
