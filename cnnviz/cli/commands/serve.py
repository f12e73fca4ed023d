"""``cnnviz serve``: the explorer, a local web app over the served models (see :mod:`explorer`)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import socket
import sys
from pathlib import Path

from cnnviz.cli.options import DEFAULT_MODEL, add_model, load_handle
from cnnviz.cli.registry import Run, command
from cnnviz.zoo.core import Between, CnnvizError, argparse_type

PORT = argparse_type(int, Between(1, 65535), "--port")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/cnnviz/serve`` (``~/.cache/cnnviz/serve``): the only folder the server writes in."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cnnviz" / "serve"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """A one-line error now, rather than a server that fails after loading the models."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CnnvizError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port or --host") \
                from None


@command("serve", "explore models in the browser: predictions, maps, layers, units (a local web app)", order=90,
         description="Start the explorer, a local web app and a JSON API (OpenAPI at /api/openapi.json) over\n"
                     "the models given here: pick or upload an image, see the prediction, explain it with any\n"
                     "attribution method, browse the layer table and feature maps, open a unit's page (its\n"
                     "activation, activation maximization that can be cancelled) and see which channels carry\n"
                     "the evidence for a class. Models come only from the command line: a request never names a\n"
                     "model file or code. Binds 127.0.0.1; another --host needs a token (printed if not given).\n"
                     "Writes only in --cache. Stop with Ctrl-C or SIGTERM.\n\n"
                     "examples:\n"
                     "  cnnviz serve\n"
                     "  cnnviz serve --model efficientnet_lite0 --model fashion_cnn --data fashion-mnist\n"
                     "  cnnviz serve --model torchvision:resnet18 --weights ckpt.pt --classes classes.txt --data photos/\n"
                     "  curl -s localhost:8000/api/explain -H 'Content-Type: application/json' \\\n"
                     "       -d '{\"image\": \"chelsea\", \"method\": \"gradcam\"}'")
def serve(parser: argparse.ArgumentParser) -> Run:
    add_model(parser, repeatable=True)
    parser.add_argument("--data", metavar="DIR|fashion-mnist",
                        help="a folder of images or a dataset name: its items can be picked as images")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine "
                                                            "only; 0.0.0.0 exposes it and needs --token)")
    parser.add_argument("--port", type=PORT, default=8000, help="port (default: 8000)")
    parser.add_argument("--token", help="a secret every request must carry (Authorization: Bearer TOKEN, or open "
                                        "the page with ?token=TOKEN); made up and printed when --host is not local")
    parser.add_argument("--cache", metavar="DIR", default=None,
                        help=f"the folder the server writes in (default: {default_cache()})")
    parser.add_argument("--cache-mb", type=argparse_type(int, Between(1, 1 << 20), "--cache-mb"), default=256,
                        metavar="MB", help="size limit of the in-memory result cache (default: 256)")

    def run(args: argparse.Namespace) -> None:
        import uvicorn

        from cnnviz.explorer import create_app

        token = args.token
        if not is_loopback(args.host):
            token = token or secrets.token_urlsafe(24)
            print(f"warning: --host {args.host} lets other machines reach this server; every request must carry "
                  f"the token {token}", file=sys.stderr)
        check_port(args.host, args.port)
        sources = args.model or [DEFAULT_MODEL]
        handles = [load_handle(argparse.Namespace(**{**vars(args), "model": source})) for source in sources]
        app = create_app(handles, args.data, cache_dir=args.cache or default_cache(), token=token,
                         cache_bytes=args.cache_mb * 2**20)
        address = f"http://{'localhost' if is_loopback(args.host) else args.host}:{args.port}/"
        print(f"cnnviz serve: {', '.join(h.name for h in handles)} at {address}"
              f"{'?token=' + token if token else ''}  (Ctrl-C stops)", flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")

    return run
