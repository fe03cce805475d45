"""`python -m flows ui | pipeline | stage`: the Prefect UI with both deployments, or one flow run now."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flows.env import default_home

DEFAULT_PORT = 4200


def _ui(args: argparse.Namespace) -> None:
    from flows.server import prefect_server

    if args.api_url:
        _serve(args, args.api_url)
        return
    home = Path(os.environ.get("PREFECT_HOME", default_home()))
    with prefect_server(args.port, home) as api:
        print(f"Prefect UI: {api.removesuffix('/api')}  (server log: {home / 'server.log'})", flush=True)
        _serve(args, api)


def _serve(args: argparse.Namespace, api: str) -> None:
    """Serve both deployments against the server at `api` until interrupted."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.dag import check_known, read_dag
    from flows.deployments import serve_deployments
    from flows.policy import flows_params

    workspace = Path(args.workspace).resolve()
    policy = flows_params(workspace)
    dag = read_dag(workspace)   # the `stage` deployment's choices: restart to pick up a changed DAG
    check_known(dag, args.target)
    cron = None if args.no_schedule else (args.cron or policy.schedule)
    print(f"pipeline schedule: {f'{cron} ({policy.timezone})' if cron else 'none (on demand)'}", flush=True)
    os.environ["PREFECT_API_URL"] = api  # the flow runs that serve() starts inherit it
    with temporary_settings({PREFECT_API_URL: api}):
        serve_deployments(workspace, list(dag), cron, policy.timezone, args.target or None)


def _check_names(workspace: str, names: list[str]) -> None:
    """Refuse unknown stage names before a flow (and maybe a temporary server) starts."""
    from flows.dag import check_known, read_dag
    if names:
        check_known(read_dag(Path(workspace).resolve()), names)


def _pipeline(args: argparse.Namespace) -> None:
    from flows.pipeline import pipeline
    _check_names(args.workspace, args.targets)
    pipeline(targets=args.targets or None, workspace=args.workspace)


def _stage(args: argparse.Namespace) -> None:
    from flows.stage import rerun_stage
    from stages.common.overrides import parse_assignment
    _check_names(args.workspace, [args.name])
    rerun_stage(args.name, set_params=dict(parse_assignment(a) for a in args.set) or None, force=args.force,
                workspace=args.workspace)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ui = sub.add_parser("ui", help="start the Prefect server (127.0.0.1) and serve the deployments")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT)
    ui.add_argument("--cron", help="schedule of the pipeline deployment (default: params.yaml flows.schedule)")
    ui.add_argument("--no-schedule", action="store_true", help="pipeline runs only when triggered")
    ui.add_argument("--target", action="append", default=[], metavar="STAGE",
                    help="the pipeline deployment's default targets (repeatable; default: all stages)")
    ui.add_argument("--api-url", help="serve on this running Prefect server (its /api URL) instead of starting one")
    ui.set_defaults(run=_ui)
    pipe = sub.add_parser("pipeline", help="run the pipeline flow now")
    pipe.add_argument("targets", nargs="*", help="stages to bring up to date (default: all)")
    pipe.set_defaults(run=_pipeline)
    st = sub.add_parser("stage", help="rerun one stage now")
    st.add_argument("name", help="stage name, e.g. features@scenes")
    st.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. features.max_nodes=24")
    st.add_argument("--force", action="store_true", help="run even if DVC finds it up to date")
    st.set_defaults(run=_stage)
    for p in (ui, pipe, st):
        p.add_argument("--workspace", default=".", help="the DVC project (default: current folder)")
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # one clear line; Prefect has logged the details
        sys.exit(f"{args.command} failed: {e}")


if __name__ == "__main__":
    main()
