"""Deployments and the local server, without starting either."""
import socket

import pytest

from flows.deployments import deployments
from flows.server import HOST, ServerError, prefect_server


def test_pipeline_on_a_schedule_stage_on_demand(tmp_path):
    pipe, stage = deployments(tmp_path, "0 3 * * *", "Europe/Paris", ["features@scenes"])
    assert (pipe.name, stage.name) == ("pipeline", "stage")
    assert [(s.schedule.cron, s.schedule.timezone) for s in pipe.schedules] == [("0 3 * * *", "Europe/Paris")]
    assert pipe.parameters == {"workspace": str(tmp_path), "targets": ["features@scenes"]}
    assert stage.schedules == [] and stage.parameters == {"workspace": str(tmp_path)}
    assert (pipe.entrypoint, stage.entrypoint) == ("flows.pipeline.pipeline", "flows.stage.rerun_stage")
    assert deployments(tmp_path, None)[0].schedules == []


def test_bad_cron_is_refused(tmp_path):
    with pytest.raises(ValueError, match="invalid cron schedule 'nightly'"):
        deployments(tmp_path, "nightly")


def test_port_in_use_is_refused_before_starting(tmp_path):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            with prefect_server(port, tmp_path):
                pass
    assert not (tmp_path / "server.log").exists()
