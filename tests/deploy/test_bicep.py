"""The Bicep under deploy/ parses and agrees with the code: queues, roles, scaling, settings.

``pycep-parser`` checks syntax only (no types, no schema); the Bicep CLI and ``what-if`` need
Azure tooling and are run where it exists (deploy/README.md). These tests hold the parts that
must match the code: the queues of the topology, least-privilege roles derived from who
produces and consumes what, one KEDA rule per consumed queue, the settings' names and defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pycep import BicepParser
from sqlalchemy.engine import make_url

from dfj_common.bus.servicebus import bicep_queue_properties
from dfj_common.bus.topology import TOPOLOGY
from dfj_common.storage.mssql import DRIVER_NAME, parse_odbc_connection_string

ROOT = Path(__file__).resolve().parents[2]
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what a container must listen on
DEPLOY = ROOT / "deploy"
SYMBOLS = {
    "gateway": "gateway",
    "jira-worker": "jiraWorker",
    "discord-worker": "discordWorker",
    "linker": "linker",
}
ROLE_IDS = {  # Azure built-in roles (reference/azure.md §1.1, §7.4)
    "serviceBusDataSender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",
    "serviceBusDataReceiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",
    "serviceBusDataOwner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "acrPull": "7f951dda-4ed3-4680-a7ca-43fe172d538d",
}
EU_REGIONS = {
    "westeurope",
    "northeurope",
    "swedencentral",
    "francecentral",
    "germanywestcentral",
    "italynorth",
    "polandcentral",
    "spaincentral",
}


# -- reading pycep's output --------------------------------------------------------------------


def ref(node: Any) -> Any:
    """A property-access chain as dotted text (``serviceBus.name``); other nodes unchanged."""
    if isinstance(node, dict) and "operator" in node:
        op = node["operator"]
        if op.get("type") == "property_accessor":
            return f"{ref(op['operands']['operand_1'])}.{ref(op['operands']['operand_2'])}"
    return node


def call(node: Any, name: str) -> dict[str, Any]:
    """The arguments of a call to Bicep function ``name`` (fails if ``node`` is not one)."""
    assert isinstance(node, dict) and "function" in node, node
    assert node["function"]["type"] == name, node
    arguments: dict[str, Any] = node["function"].get("parameters", {})
    return arguments


def module_params(parsed: Mapping[str, Any], symbol: str) -> dict[str, Any]:
    """The ``params`` of a module declaration, conditional (``= if (…) {…}``) or not."""
    config = parsed["modules"][symbol]["config"]
    if "params" not in config:
        config = config["config"]
    params: dict[str, Any] = config["params"]
    return params


def env_entries(parsed: Mapping[str, Any], node: Any) -> list[dict[str, Any]]:
    """An ``env`` value, ``concat(var, [...])`` or a list, with variables expanded."""
    if isinstance(node, list):
        items: list[dict[str, Any]] = []
        for item in node:
            items += env_entries(parsed, item) if not isinstance(item, dict) else [item]
        return items
    if isinstance(node, str):
        return env_entries(parsed, parsed["variables"][node]["value"])
    entries: list[dict[str, Any]] = []
    for part in call(node, "concat").values():
        entries += env_entries(parsed, part)
    return entries


def variable(parsed: Mapping[str, Any], name: str) -> Any:
    return parsed["variables"][name]["value"]


def decorator(parsed: Mapping[str, Any], param: str, kind: str) -> Any:
    for found in parsed["parameters"][param]["decorators"]:
        if found["type"] == kind:
            return found["argument"]
    raise AssertionError(f"parameter {param} has no @{kind}")


# -- the files parse ---------------------------------------------------------------------------


def test_every_bicep_file_parses(bicep_parser: BicepParser) -> None:
    """Syntax of every .bicep file under deploy/ (pycep raises on an error)."""
    files = sorted(DEPLOY.rglob("*.bicep"))
    assert len(files) >= 2
    for path in files:
        parsed = bicep_parser.parse(file_path=path)
        assert parsed["resources"], path


def test_the_parser_rejects_broken_bicep(bicep_parser: BicepParser) -> None:
    """The parse check above can fail: an unclosed object is an error."""
    text = (DEPLOY / "modules" / "containerapp.bicep").read_text()
    with pytest.raises(Exception, match=r"(?i)unexpected|invalid"):
        bicep_parser.parse(text=text.replace("output name string = app.name", "output name = {"))


def test_module_paths_exist(main_bicep: dict[str, Any]) -> None:
    for symbol, module in main_bicep["modules"].items():
        assert (DEPLOY / module["detail"]["path"]).is_file(), symbol


# -- Service Bus -------------------------------------------------------------------------------


def test_queue_definitions_are_the_topology(main_bicep: dict[str, Any]) -> None:
    """Names, sessions, max deliveries, lock, dedupe, dead-lettering: each from the topology."""
    queues = variable(main_bicep, "queueDefinitions")
    assert [q["name"] for q in queues] == list(TOPOLOGY)
    for queue in queues:
        spec = TOPOLOGY[queue["name"]]
        props = queue["properties"]
        assert props == bicep_queue_properties(spec), queue["name"]
        assert props["requiresSession"] is spec.sessions
        assert props["maxDeliveryCount"] == spec.max_deliveries
        assert props["requiresDuplicateDetection"] is (spec.duplicate_window > 0)
        assert props["deadLetteringOnMessageExpiration"] is True


def test_queues_are_created_from_the_definitions(main_bicep: dict[str, Any]) -> None:
    """One queue resource per definition, under the namespace, with its properties."""
    resource = main_bicep["resources"]["queues"]
    assert resource["type"] == "Microsoft.ServiceBus/namespaces/queues"
    loop = resource["config"]["loop_type"]["detail"]
    assert loop["array_name"] == "queueDefinitions"
    body = resource["config"]["config"]
    item = loop["item_name"]
    assert body["parent"] == "serviceBus"
    assert ref(body["name"]) == f"{item}.name"
    assert ref(body["properties"]) == f"{item}.properties"


def test_namespace_is_entra_only_and_supports_sessions(main_bicep: dict[str, Any]) -> None:
    """Local (SAS) auth off; Standard or Premium only (sessions and dedupe need them)."""
    namespace = main_bicep["resources"]["serviceBus"]["config"]
    assert namespace["properties"]["disableLocalAuth"] is True
    assert namespace["properties"]["minimumTlsVersion"] == "1.2"
    assert namespace["sku"]["name"] == "serviceBusSku"
    assert set(decorator(main_bicep, "serviceBusSku", "allowed")) == {"Standard", "Premium"}


def test_queue_roles_are_least_privilege(
    main_bicep: dict[str, Any], expected_roles: set[tuple[str, str, str]]
) -> None:
    """Send where a service publishes, receive what it consumes (+ send for retry copies on a
    queue without sessions); nothing else, and the gateway only sends."""
    roles = {(r["service"], r["queue"], r["role"]) for r in variable(main_bicep, "queueRoles")}
    assert roles == expected_roles
    assert {role for service, _, role in roles if service == "gateway"} == {"serviceBusDataSender"}
    ids = variable(main_bicep, "roleIds")
    for name, guid in ROLE_IDS.items():
        assert ids[name] == guid, name


def test_queue_roles_cover_every_queue_the_code_names(
    main_bicep: dict[str, Any], services: dict[str, Any]
) -> None:
    """A service whose source names a queue has a role on it (a new publish path without its
    role would fail on Azure only)."""
    constants = {"JIRA_EVENTS", "JIRA_COMMANDS", "DISCORD_OUTBOX", "LINKER"}
    from dfj_common.bus import topology

    queue_of = {c: getattr(topology, c) for c in constants}
    granted: dict[str, set[str]] = {}
    for r in variable(main_bicep, "queueRoles"):
        granted.setdefault(r["service"], set()).add(r["queue"])
    for name in services:
        source = "\n".join(p.read_text() for p in (ROOT / "services" / name / "src").rglob("*.py"))
        named = {queue_of[c] for c in constants if re.search(rf"\b{c}\b", source)}
        named |= {q for q in TOPOLOGY if f'"{q}"' in source}
        assert named, name
        assert named <= granted[name], (name, sorted(named - granted[name]))


def test_role_assignments_use_the_role_table(main_bicep: dict[str, Any]) -> None:
    """Queue-scoped assignments loop over queueRoles, each on its own queue."""
    resource = main_bicep["resources"]["queueRoleAssignments"]["config"]
    loop = resource["loop_type"]["detail"]
    assert loop["array_name"] == "queueRoles"
    scope = resource["config"]["scope"]["operator"]
    assert scope["operands"] == {"operand_1": "roleQueues", "operand_2": loop["index_name"]}
    targets = main_bicep["resources"]["roleQueues"]
    assert targets["existing"] is True
    assert targets["config"]["loop_type"]["detail"]["array_name"] == "queueRoles"


# -- container apps ---------------------------------------------------------------------------


def test_each_service_is_one_container_app_with_its_identity(
    main_bicep: dict[str, Any], services: dict[str, Any]
) -> None:
    assert set(main_bicep["modules"]) == set(SYMBOLS.values())
    for name, symbol in SYMBOLS.items():
        params = module_params(main_bicep, symbol)
        assert main_bicep["modules"][symbol]["detail"]["path"] == "modules/containerapp.bicep"
        assert params["service"] == name
        identity = ref(params["identityId"]).split(".")[0]
        assert main_bicep["resources"][identity]["type"] == (
            "Microsoft.ManagedIdentity/userAssignedIdentities"
        )
        assert ref(params["identityClientId"]) == f"{identity}.properties.clientId"
        assert params["image"].endswith(f"/dfj-{name}:${{imageTag}}"), params["image"]
        assert params["port"] == services[name].port, name
        env = {e["name"]: e for e in env_entries(main_bicep, params["env"])}
        assert env[services[name].port_env]["value"] == str(services[name].port), name
    identities = {ref(module_params(main_bicep, s)["identityId"]) for s in SYMBOLS.values()}
    assert len(identities) == 4, "one identity per service"


def test_each_worker_scales_on_each_queue_it_consumes(
    main_bicep: dict[str, Any], app_bicep: dict[str, Any], services: dict[str, Any]
) -> None:
    """scaleQueues = the queues the topology says the service consumes; the namespace is passed
    by name (KEDA wants the name, not the FQDN)."""
    for name, symbol in SYMBOLS.items():
        params = module_params(main_bicep, symbol)
        assert params["scaleQueues"] == list(services[name].consumes), name
        assert ref(params["serviceBusNamespaceName"]) == "serviceBus.name", name
        if name != "gateway":
            assert params.get("externalIngress", False) is False, name
            assert params["messagesPerReplica"] == "messagesPerReplica", name
            assert params["minReplicas"] == "workerMinReplicas", name
    consumed = {(c["service"], c["queue"]) for c in variable(main_bicep, "consumedQueues")}
    assert consumed == {(s.name, q) for s in services.values() for q in s.consumes}
    assert decorator(main_bicep, "workerMinReplicas", "min_value") == 0
    assert decorator(main_bicep, "workerMinReplicas", "max_value") == 1


def test_scale_rules_are_keda_servicebus_with_identity(app_bicep: dict[str, Any]) -> None:
    """One azure-servicebus rule per scaleQueues entry: queueName, namespace, messageCount,
    and the app's identity instead of a SAS secret; HTTP concurrency only with ingress."""
    rules = variable(app_bicep, "queueRules")
    loop = rules["loop_type"]["detail"]
    assert loop["array_name"] == "scaleQueues"
    custom = rules["config"]["custom"]
    assert custom["type"] == "azure-servicebus"
    assert custom["identity"] == "identityId"
    assert "auth" not in custom
    metadata = custom["metadata"]
    assert metadata["queueName"] == loop["item_name"]
    assert metadata["namespace"] == "serviceBusNamespaceName"
    assert call(metadata["messageCount"], "string") == {"value_to_convert": "messagesPerReplica"}
    http = variable(app_bicep, "httpRules")["operator"]
    assert http["type"] == "conditional"
    assert http["operands"]["condition"] == "externalIngress"
    assert http["operands"]["false_value"] == []
    app = app_bicep["resources"]["app"]
    assert app["type"] == "Microsoft.App/containerApps"
    assert app["api_version"] >= "2025-01-01", "scale-rule identity needs 2025-01-01"
    scale = app["config"]["properties"]["template"]["scale"]
    assert call(scale["rules"], "concat") == {"arg_1": "httpRules", "arg_2": "queueRules"}
    assert scale["minReplicas"] == "minReplicas" and scale["maxReplicas"] == "maxReplicas"


def test_gateway_has_external_https_ingress_and_never_scales_to_zero(
    main_bicep: dict[str, Any], app_bicep: dict[str, Any]
) -> None:
    params = module_params(main_bicep, "gateway")
    assert params["externalIngress"] is True
    assert params["scaleQueues"] == []
    assert params["minReplicas"] == "gatewayMinReplicas"
    assert decorator(main_bicep, "gatewayMinReplicas", "min_value") >= 1
    ingress = variable(app_bicep, "ingressConfig")
    assert ingress == {
        "external": True,
        "targetPort": "port",
        "transport": "auto",
        "allowInsecure": False,
    }
    app = app_bicep["resources"]["app"]["config"]["properties"]["configuration"]
    assert app["ingress"]["operator"]["operands"]["true_value"] == "ingressConfig"
    assert app["activeRevisionsMode"] == "Single"


def test_probes_and_graceful_shutdown(
    main_bicep: dict[str, Any],
    app_bicep: dict[str, Any],
    expected_roles: set[Any],
    drain_grace: float,
) -> None:
    """Liveness and startup on /healthz; readiness on /readyz only where the identity may run
    its bus check (a peek on the first queue's dead letters needs Listen there); SIGKILL only
    after the drain period plus 5 s; the drain period is the settings' default."""
    container = app_bicep["resources"]["app"]["config"]["properties"]["template"]
    probes = {p["type"]: p for p in container["containers"][0]["probes"]}
    assert set(probes) == {"Startup", "Liveness", "Readiness"}
    for kind in ("Startup", "Liveness"):
        assert probes[kind]["httpGet"] == {"path": "/healthz", "port": "port"}
    assert probes["Readiness"]["httpGet"] == {"path": "readinessPath", "port": "port"}
    grace = container["terminationGracePeriodSeconds"]["operator"]
    assert grace == {"type": "add", "operands": {"operand_1": "drainGraceSeconds", "operand_2": 5}}
    assert main_bicep["parameters"]["drainGraceSeconds"]["default"] == drain_grace
    ping_queue = next(iter(TOPOLOGY))
    for name, symbol in SYMBOLS.items():
        params = module_params(main_bicep, symbol)
        listens = (name, ping_queue, "serviceBusDataReceiver") in expected_roles
        assert params["readinessPath"] == ("/readyz" if listens else "/healthz"), name
        assert params["drainGraceSeconds"] == "drainGraceSeconds", name


def test_every_dfj_name_in_bicep_is_a_setting(known_names: frozenset[str]) -> None:
    used: set[str] = set()
    for path in DEPLOY.rglob("*.bicep"):
        used |= set(re.findall(r"\bDFJ_[A-Z0-9_]+\b", path.read_text()))
    assert len(used) > 10
    assert used <= known_names, sorted(used - known_names)


def test_apps_get_the_azure_backends_and_telemetry(
    main_bicep: dict[str, Any], app_bicep: dict[str, Any]
) -> None:
    """Service Bus by identity, Key Vault, Application Insights' connection string as a secret,
    JSON logs, the managed identity for azure-identity."""
    common = {e["name"]: e for e in variable(main_bicep, "commonEnv")}
    assert common["DFJ_BUS"]["value"] == "servicebus"
    assert common["DFJ_SERVICEBUS_NAMESPACE"]["value"].startswith("${serviceBus.name}")
    assert "DFJ_SERVICEBUS_CONNECTION" not in common, "no SAS: local auth is disabled"
    assert common["DFJ_BIND_HOST"]["value"] == ALL_INTERFACES
    assert ref(common["DFJ_KEYVAULT_URL"]["value"]) == "keyVault.properties.vaultUri"
    assert common["DFJ_TELEMETRY"]["value"] == "azure"
    secret = common["DFJ_APPLICATIONINSIGHTS_CONNECTION_STRING"]["secretRef"]
    app_insights = variable(main_bicep, "appInsightsSecret")
    assert app_insights["name"] == secret
    assert ref(app_insights["value"]) == "appInsights.properties.ConnectionString"
    template = app_bicep["resources"]["app"]["config"]["properties"]["template"]
    extra = {e["name"] for e in call(template["containers"][0]["env"], "concat")["arg_2"]}
    assert {"AZURE_CLIENT_ID", "DFJ_DATABASE_URL", "DFJ_DRAIN_GRACE_SECONDS"} <= extra
    for symbol in SYMBOLS.values():
        params = module_params(main_bicep, symbol)
        env = env_entries(main_bicep, params["env"])
        secrets = {
            s["name"] if isinstance(s, dict) else variable(main_bicep, s)["name"]
            for s in params["secrets"]
        }
        for entry in env:
            if "secretRef" in entry:
                assert entry["secretRef"] in secrets, (symbol, entry["name"])
        for kv in (s for s in params["secrets"] if isinstance(s, dict) and "keyVaultUrl" in s):
            assert kv["keyVaultUrl"].endswith(f"secrets/{kv['name']}"), symbol
            assert ref(kv["identity"]) == ref(params["identityId"]), symbol


def test_database_url_is_odbc_driver_18_with_the_app_identity(app_bicep: dict[str, Any]) -> None:
    """ARM's format() + uriComponent(), done in Python: an mssql+pyodbc URL whose
    odbc_connect selects the user-assigned identity by client id."""
    fmt_args = call(variable(app_bicep, "odbcConnectionString"), "format")
    template, *names = fmt_args.values()
    assert names == ["sqlServerFqdn", "sqlDatabaseName", "identityClientId"]
    odbc = template.format("dfj-sql.database.windows.net", "dfj", "client-id-1")
    url_args = call(variable(app_bicep, "databaseUrl"), "concat")
    assert call(url_args["arg_2"], "uri_component") == {"string_to_encode": "odbcConnectionString"}
    url = make_url(url_args["arg_1"] + quote(odbc, safe="-_.!~*'()"))
    assert (url.get_backend_name(), url.get_driver_name()) == ("mssql", "pyodbc")
    pairs = dict(parse_odbc_connection_string(str(url.query["odbc_connect"])))
    assert pairs["Driver"] == DRIVER_NAME
    assert pairs["Server"] == "tcp:dfj-sql.database.windows.net,1433"
    assert pairs["Authentication"] == "ActiveDirectoryMsi"
    assert pairs["UID"] == "client-id-1"
    assert pairs["Encrypt"] == "yes"


def test_discord_worker_replicas_share_the_global_budget(main_bicep: dict[str, Any]) -> None:
    """Each process keeps its own global limiter: the budget is divided by max replicas."""
    env = {
        e["name"]: e
        for e in env_entries(main_bicep, module_params(main_bicep, "discordWorker")["env"])
    }
    value = env["DFJ_DISCORD_GLOBAL_REQUESTS_PER_SECOND"]["value"]
    division = call(call(value, "string")["value_to_convert"], "max")["arg_2"]["operator"]
    assert division["type"] == "divide"
    assert division["operands"] == {
        "operand_1": "discordGlobalRequestsPerSecond",
        "operand_2": "discordWorkerMaxReplicas",
    }


# -- data, secrets, outputs -------------------------------------------------------------------


def test_sql_is_entra_only(main_bicep: dict[str, Any]) -> None:
    server = main_bicep["resources"]["sqlServer"]["config"]["properties"]
    admins = server["administrators"]
    assert admins["administratorType"] == "ActiveDirectory"
    assert admins["azureADOnlyAuthentication"] is True
    assert "administratorLoginPassword" not in server
    assert "administratorLogin" not in server
    assert server["minimalTlsVersion"] == "1.2"


def test_key_vault_uses_rbac_and_every_service_reads_secrets(
    main_bicep: dict[str, Any], services: dict[str, Any]
) -> None:
    vault = main_bicep["resources"]["keyVault"]["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert "accessPolicies" not in vault
    users = main_bicep["resources"]["secretsUser"]["config"]
    assert users["loop_type"]["detail"]["array_name"] == "serviceNames"
    assert variable(main_bicep, "serviceNames") == list(services)
    role = users["config"]["properties"]["roleDefinitionId"]
    assert ref(call(role, "subscription_resource_id")["resource_name_1"]) == (
        "roleIds.keyVaultSecretsUser"
    )
    principals = variable(main_bicep, "principals")
    assert {key.strip("'") for key in principals} == set(services)


def test_region_defaults_to_the_eu(main_bicep: dict[str, Any]) -> None:
    assert main_bicep["parameters"]["location"]["default"] in EU_REGIONS


def test_outputs_are_the_urls_to_register(main_bicep: dict[str, Any]) -> None:
    """The gateway URL, the Connect descriptor and the Discord endpoints, on the gateway's
    own route paths."""
    from dfj_gateway.browser.state import CALLBACK_PATH
    from dfj_gateway.discord.routes import INTERACTIONS_PATH
    from dfj_gateway.jira.paths import DESCRIPTOR

    outputs = main_bicep["outputs"]
    assert outputs["gatewayUrl"]["value"] == "publicBaseUrl"
    assert outputs["descriptorUrl"]["value"] == "${publicBaseUrl}" + DESCRIPTOR
    assert outputs["interactionsEndpointUrl"]["value"] == "${publicBaseUrl}" + INTERACTIONS_PATH
    assert outputs["oauthRedirectUri"]["value"] == "${publicBaseUrl}" + CALLBACK_PATH
    common = {e["name"]: e for e in variable(main_bicep, "commonEnv")}
    assert common["DFJ_PUBLIC_URL"]["value"] == "publicBaseUrl"
    assert set(outputs["sqlUsers"]["value"]) == {
        "gateway",
        "jiraWorker",
        "discordWorker",
        "linker",
        "migrate",
    }
