"""The deployment files agree with the code: every LLMHUB_* variable they set is a real setting
with a valid value, ports and health paths are the ones llmhub serves, shutdown windows cover
llmhub's grace, and the AWS task role grants exactly the Bedrock actions the providers call.
A setting, route or provider call that changes shows up here, not in production."""

from __future__ import annotations

import re
from typing import Any

import pytest

from llmhub.config import DEFAULT_OLLAMA_URL, Settings
from llmhub.routes import health
from tests.deploy_support import (
    COMPOSE_COMBINATIONS,
    LIBRARY_VARIABLES,
    PREFIX,
    ROOT,
    STORE_WINDOW,
    cloudformation,
    compose_config,
    environment_names,
    kustomize,
    overlays,
    required_bedrock_actions,
    setting_keys,
    settings_from,
    without_conditions,
)

READY = next(r.path for r in health.routes if r.endpoint.__name__ == "ready")
LIVE = next(r.path for r in health.routes if r.endpoint.__name__ == "live")
OLLAMA_PORT = int(DEFAULT_OLLAMA_URL.rsplit(":", 1)[1])


def assert_variables_are_settings(names: set[str], where: str) -> None:
    known = environment_names()
    unknown = {n for n in names if n.startswith(PREFIX) and n not in known}
    assert not unknown, f"{where}: not llmhub settings: {sorted(unknown)}"
    others = {n for n in names if not n.startswith(PREFIX)} - LIBRARY_VARIABLES
    assert not others, f"{where}: variables llmhub does not read: {sorted(others)}"


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match and duration, duration
    return int(match[1] or 0) * 60 + int(match[2] or 0)


# -- compose ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=COMPOSE_COMBINATIONS, ids=lambda f: "+".join(f))
def compose(request: pytest.FixtureRequest) -> dict[str, Any]:
    return compose_config(request.param)


def test_compose_sets_only_real_settings_with_valid_values(compose: dict[str, Any]) -> None:
    environment = compose["services"]["llmhub"]["environment"]
    assert_variables_are_settings(set(environment), "compose")
    settings = settings_from({k: v for k, v in environment.items() if v is not None})
    assert settings.database_url is not None  # never the embedded database in compose
    assert settings.ollama_urls == ["http://ollama:11434"]
    hybrid = "LLMHUB_BEDROCK__REGION" in environment
    assert settings.mode == ("hybrid" if hybrid else "local")


def test_compose_ports_health_checks_and_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    llmhub = services["llmhub"]
    settings = settings_from({k: v for k, v in llmhub["environment"].items() if v is not None})
    assert [p["target"] for p in llmhub["ports"]] == [settings.port]
    assert f"127.0.0.1:{settings.port}{READY}'" in " ".join(llmhub["healthcheck"]["test"])
    assert llmhub["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert f"/{OLLAMA_PORT} " in " ".join(services["ollama"]["healthcheck"]["test"])
    assert "GET /api/version " in " ".join(services["ollama"]["healthcheck"]["test"])
    grace = seconds(llmhub["stop_grace_period"])
    assert grace >= settings.shutdown_timeout + STORE_WINDOW


def test_the_hybrid_override_passes_aws_credentials_only_when_set() -> None:
    environment = compose_config(("compose.yaml", "compose.hybrid.yaml"))["services"]["llmhub"][
        "environment"
    ]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        assert environment[name] is None  # unset in .env.example: left unset, never ""


def test_the_gpu_override_reserves_gpus_for_ollama() -> None:
    config = compose_config(("compose.yaml", "compose.gpu.yaml"))
    devices = config["services"]["ollama"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "deploy" not in config["services"]["llmhub"]


def test_the_image_checks_readiness_on_its_port() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    healthcheck = dockerfile.split("HEALTHCHECK", 1)[1].split("\n\n", 1)[0]
    assert f"{READY}'" in healthcheck
    assert f"'{Settings.model_fields['port'].default}'" in healthcheck  # LLMHUB_PORT's default
    assert re.search(r"^STOPSIGNAL SIGTERM$", dockerfile, re.M)
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    for line in re.findall(r"^FROM (\S+)", dockerfile, re.M):
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", line), line


# -- kubernetes ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=overlays(), ids=lambda p: p.name)
def manifests(request: pytest.FixtureRequest) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in kustomize(request.param)}


def _pod_environment(manifests: dict[tuple[str, str], dict[str, Any]]) -> dict[str, str]:
    container = manifests["Deployment", "llmhub"]["spec"]["template"]["spec"]["containers"][0]
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            environment |= manifests["ConfigMap", source["configMapRef"]["name"]]["data"]
        if "secretRef" in source:
            environment |= manifests["Secret", source["secretRef"]["name"]]["stringData"]
    environment |= {e["name"]: e["value"] for e in container.get("env", [])}
    return environment


def test_kubernetes_sets_only_real_settings_with_valid_values(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    environment = _pod_environment(manifests)
    assert_variables_are_settings(set(environment), "kubernetes")
    settings = settings_from(environment)
    assert settings.database_url is not None
    if ("StatefulSet", "ollama") in manifests:
        assert settings.ollama.dns_discovery  # one server per Ollama pod
        service = manifests["Service", "ollama"]["spec"]
        assert service["clusterIP"] == "None"
        assert settings.ollama_urls == [f"http://ollama:{service['ports'][0]['port']}"]


def test_kubernetes_ports_probes_and_grace(
    manifests: dict[tuple[str, str], dict[str, Any]],
) -> None:
    settings = settings_from(_pod_environment(manifests))
    pod = manifests["Deployment", "llmhub"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": settings.port}
    assert container["readinessProbe"]["httpGet"] == {"path": READY, "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": LIVE, "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": LIVE, "port": "http"}
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    grace = int(sleep[1]) + settings.shutdown_timeout + STORE_WINDOW
    assert pod["terminationGracePeriodSeconds"] == grace
    assert manifests["Service", "llmhub"]["spec"]["ports"][0]["targetPort"] == "http"
    if ("StatefulSet", "ollama") in manifests:
        ollama = manifests["StatefulSet", "ollama"]["spec"]["template"]["spec"]["containers"][0]
        assert ollama["ports"][0]["containerPort"] == OLLAMA_PORT
        assert ollama["readinessProbe"]["httpGet"]["path"] == "/api/version"
        assert "nvidia.com/gpu" in ollama["resources"]["requests"]


# -- cloudformation --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cloudformation()


def _container(template: dict[str, Any]) -> dict[str, Any]:
    definition = template["Resources"]["AppTaskDefinition"]["Properties"]
    container: dict[str, Any] = definition["ContainerDefinitions"][0]
    return container


def _literal_environment(template: dict[str, Any]) -> dict[str, Any]:
    container = _container(template)
    entries = [e for item in container["Environment"] for e in without_conditions(item)]
    return {e["Name"]: e["Value"] for e in entries}


def test_cloudformation_sets_only_real_settings(template: dict[str, Any]) -> None:
    container = _container(template)
    names = set(_literal_environment(template)) | {s["Name"] for s in container["Secrets"]}
    assert_variables_are_settings(names, "cloudformation")
    assert {"LLMHUB_DATABASE_URL", "LLMHUB_SECRET_KEY"} <= names  # what aws mode requires
    literal = {k: v for k, v in _literal_environment(template).items() if isinstance(v, str)}
    settings = settings_from(
        {**literal, "LLMHUB_DATABASE_URL": "postgresql://db:5432/x", "LLMHUB_SECRET_KEY": "k" * 40}
    )
    assert settings.mode == "aws"


def test_cloudformation_ports_health_and_grace(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    literal = {k: v for k, v in _literal_environment(template).items() if isinstance(v, str)}
    settings = settings_from(
        {**literal, "LLMHUB_DATABASE_URL": "postgresql://db:5432/x", "LLMHUB_SECRET_KEY": "k" * 40}
    )
    container = _container(template)
    assert [p["ContainerPort"] for p in container["PortMappings"]] == [settings.port]
    group = resources["TargetGroup"]["Properties"]
    assert group["Port"] == settings.port
    assert group["HealthCheckPath"] == READY
    for rule in ("AlbToApp", "AppFromAlb"):
        properties = resources[rule]["Properties"]
        assert properties["FromPort"] == properties["ToPort"] == settings.port
    check = " ".join(container["HealthCheck"]["Command"])
    assert f"127.0.0.1:{settings.port}{LIVE}'" in check  # liveness: an RDS failover kills no task
    grace = settings.shutdown_timeout + STORE_WINDOW
    assert grace <= container["StopTimeout"] <= 120  # Fargate's limit
    attributes = {a["Key"]: a["Value"] for a in group["TargetGroupAttributes"]}
    assert float(attributes["deregistration_delay.timeout_seconds"]) > grace
    for rule in ("OllamaFromApp", "AppToOllama"):
        properties = resources[rule]["Properties"]
        assert properties["FromPort"] == properties["ToPort"] == OLLAMA_PORT
    ollama = resources["OllamaTaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    assert ollama["PortMappings"][0]["ContainerPort"] == OLLAMA_PORT
    assert "GET /api/version " in " ".join(ollama["HealthCheck"]["Command"])


def test_the_task_role_grants_exactly_the_bedrock_calls_the_code_makes(
    template: dict[str, Any],
) -> None:
    granted: set[str] = set()
    for policy in template["Resources"]["TaskRole"]["Properties"]["Policies"]:
        statements = policy["PolicyDocument"]["Statement"]
        for statement in [s for item in statements for s in without_conditions(item)]:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"]
            granted |= {actions} if isinstance(actions, str) else set(actions)
    assert not {a for a in granted if not a.startswith("bedrock:")}, "only Bedrock is needed"
    assert granted == required_bedrock_actions()
    assert "bedrock:*" not in granted


def test_api_clients_pass_the_load_balancer_sign_in_with_their_keys(
    template: dict[str, Any],
) -> None:
    rule = template["Resources"]["BearerPassThrough"]["Properties"]
    conditions = {c["Field"]: c for c in rule["Conditions"]}
    assert conditions["path-pattern"]["PathPatternConfig"]["Values"] == ["/v1/*", "/api/*"]
    header = conditions["http-header"]["HttpHeaderConfig"]
    assert header == {"HttpHeaderName": "Authorization", "Values": ["Bearer *"]}
    assert [a["Type"] for a in rule["Actions"]] == ["forward"]
    environment = _literal_environment(template)
    assert {"LLMHUB_AUTH__ALB__ARN", "LLMHUB_AUTH__ALB__CLIENT_ID"} <= set(environment)


# -- the settings reference ------------------------------------------------------------------


def _example_keys() -> set[str]:
    """Keys config.example.toml shows (set or commented out), dotted by their section."""
    keys, section = set(), ""
    for line in (ROOT / "config.example.toml").read_text().splitlines():
        if heading := re.fullmatch(r"#? ?\[\[?([a-z_.]+)\]\]?", line):
            section = heading[1] + "."
        elif key := re.match(r"#? ?([a-z_]+) = ", line):
            keys.add(section + key[1])
    return keys


def _documented_keys() -> set[str]:
    text = (ROOT / "docs" / "deployment.md").read_text()
    table = text.split("\n## Every setting\n", 1)[1]
    return {k.replace("[]", "") for k in re.findall(r"^\| `([a-z_.\[\]]+)` \|", table, re.M)}


def test_the_example_config_and_the_deployment_guide_document_every_setting() -> None:
    keys = setting_keys()
    example = _example_keys()
    assert not keys - example, f"missing from config.example.toml: {sorted(keys - example)}"
    assert not example - keys, f"config.example.toml shows unknown keys: {sorted(example - keys)}"
    documented = _documented_keys()
    assert not keys - documented, f"missing from docs/deployment.md: {sorted(keys - documented)}"
    stale = documented - keys
    assert not stale, f"docs/deployment.md documents unknown keys: {sorted(stale)}"
