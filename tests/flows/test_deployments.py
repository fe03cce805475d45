"""Deployments and the local server, without starting either."""
import socket

import pytest
from prefect.utilities.schema_tools import ValidationError, validate

from flows.deployments import deployments
from flows.server import HOST, ServerError, prefect_server

STAGES = ["inputs@scenes", "prepare@scenes", "features@scenes", "evaluate@vqa"]


def test_pipeline_on_a_schedule_stage_on_demand(tmp_path):
    pipe, stage = deployments(tmp_path, STAGES, "0 3 * * *", "Europe/Paris", ["features@scenes"])
    assert (pipe.name, stage.name) == ("pipeline", "stage")
    assert [(s.schedule.cron, s.schedule.timezone) for s in pipe.schedules] == [("0 3 * * *", "Europe/Paris")]
    assert pipe.parameters == {"workspace": str(tmp_path), "targets": ["features@scenes"]}
    assert stage.schedules == [] and stage.parameters == {"workspace": str(tmp_path)}
    assert (pipe.entrypoint, stage.entrypoint) == ("flows.pipeline.pipeline", "flows.stage.rerun_stage")
    assert deployments(tmp_path, STAGES, None)[0].schedules == []


def stage_schema(tmp_path, stages: list[str]) -> dict:
    """The `stage` deployment's parameter schema, as the API receives it."""
    return deployments(tmp_path, stages, None)[1]._parameter_openapi_schema.model_dump_for_openapi()


def test_stage_is_a_choice_of_the_dag_stages(tmp_path):
    schema = stage_schema(tmp_path, STAGES)
    ref = schema["properties"]["stage"]["$ref"].removeprefix("#/definitions/")
    assert schema["definitions"][ref] | {"title": None} == {"enum": STAGES, "type": "string", "title": None}
    assert schema["required"] == ["stage"]
    assert schema["definitions"][ref]["enum"] != stage_schema(tmp_path, STAGES[:2])["definitions"][ref]["enum"]
    assert set(schema["properties"]) == {"stage", "set_params", "force", "workspace", "retries", "retry_delay_s",
                                         "lock_wait_s"}   # the other parameters as the flow declares them
    with pytest.raises(ValueError, match="the DAG has no stages"):
        deployments(tmp_path, [], None)


def test_api_refuses_a_name_not_in_the_choice(tmp_path):
    """The check the Prefect server runs on the parameters of a new flow run of the deployment."""
    schema = stage_schema(tmp_path, STAGES)
    assert validate({"stage": "evaluate@vqa", "workspace": str(tmp_path)}, schema, raise_on_error=True) == []
    with pytest.raises(ValidationError, match=r"^Validation failed for field 'stage'. Failure reason: "
                                              r"'features@scnes' is not one of \['inputs@scenes', 'prepare@scenes', "
                                              r"'features@scenes', 'evaluate@vqa'\]$"):
        validate({"stage": "features@scnes", "workspace": str(tmp_path)}, schema, raise_on_error=True)


def test_bad_cron_is_refused(tmp_path):
    with pytest.raises(ValueError, match="invalid cron schedule 'nightly'"):
        deployments(tmp_path, STAGES, "nightly")


def test_port_in_use_is_refused_before_starting(tmp_path):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            with prefect_server(port, tmp_path):
                pass
    assert not (tmp_path / "server.log").exists()
