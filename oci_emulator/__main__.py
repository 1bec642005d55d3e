"""``python -m oci_emulator --port 18080``: serve the emulator until interrupted.

Prints the OCI config file (generated unless ``--config`` is given), the key, the compartment, the
GenAI API key for ``/openai/v1`` and the base URL.
"""

from __future__ import annotations

import argparse
import json
import sys


def _setting(value: str):
    key, _, raw = value.partition("=")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oci_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--config", help="use this OCI config file instead of generating one")
    parser.add_argument("--profile", default="DEFAULT")
    parser.add_argument("--workdir", help="where to write generated credentials (default: a temp dir)")
    parser.add_argument("--compartment", action="append", default=[], help="extra allowed compartment OCID")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", type=_setting,
                        help="initial setting, e.g. --set generic_done=false")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    import uvicorn

    from .server import EmulatorServer, config_text

    emu = EmulatorServer(args.host, args.port, workdir=args.workdir, config_file=args.config,
                         profile=args.profile, settings=dict(args.set), compartments=args.compartment,
                         log_level=args.log_level)
    creds = emu.credentials
    out = sys.stdout
    out.write(f"# OCI config file: {creds.config_file} (profile {creds.profile})\n")
    out.write(config_text(creds.config_file) + "\n")
    out.write(f"# key_file: {creds.key_file}\n# keyId: {creds.key_id}\n")
    out.write("# public key:\n" + creds.public_key_pem)
    out.write(f"# compartment_id: {emu.compartment_id}\n")
    if creds.api_keys:
        out.write(f"# GenAI API key (Bearer, /openai/v1): {creds.api_keys[0]}\n")
    out.write(f"# base URL (inference + control plane): http://{args.host}:{args.port}\n")
    out.flush()
    config = uvicorn.Config(emu.app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                            server_header=False, lifespan="off", timeout_graceful_shutdown=1)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
