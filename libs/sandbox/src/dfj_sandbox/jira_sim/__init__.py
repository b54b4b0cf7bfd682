"""A Jira Cloud simulator that speaks the real protocol, for tests, the demo and benchmarks.

``async with JiraSimulator() as sim`` serves sites on loopback; ``sim.add_site()`` installs the
app on a new site (a default project, workflow and priorities included) and the builders on
:class:`Site` fill it. The app's real client talks to ``site.base_url`` with Connect JWTs or
impersonation tokens from ``sim.oauth_url``, and every request is checked against Jira's
OpenAPI document. :mod:`~dfj_sandbox.jira_sim.webhooks` builds the bodies Jira would post.

``await sim.install_app(site, descriptor_url)`` installs the app as Jira does (signed-install
``installed``, then ``enabled``); from then on every change on the site is a signed webhook
to the app, retried like Jira's (``sim.webhook_deliveries``, ``await sim.webhooks_idle()``),
and ``site.app.page_url(...)`` / ``{baseUrl}/plugins/servlet/ac/…`` frame the app's pages.

``await sim.install_forge_app(site, manifest_path, remote_base_url=...)`` installs it as a
Forge app instead (or ``sim.migrate_to_forge`` moves a Connect install over): Forge
Invocation Tokens signed with keys served at ``sim.forge_jwks_url``, system and offline user
tokens for ``{sim.url}/ex/jira/{cloudId}``, trigger calls for every change
(``sim.forge_deliveries``, ``await sim.forge_idle()``) — see :mod:`~dfj_sandbox.jira_sim.forge`.
"""

from dfj_sandbox.jira_sim.changes import (
    Change,
    CommentAdded,
    CommentDeleted,
    CommentUpdated,
    IssueCreated,
    IssueDeleted,
    IssueUpdated,
    Observer,
)
from dfj_sandbox.jira_sim.connect import (
    AppInstallation,
    InstallRefused,
    LifecyclePolicy,
    PageModule,
    WebhookModule,
)
from dfj_sandbox.jira_sim.delivery import (
    DeliveryAttempt,
    ForgeDelivery,
    LifecycleDelivery,
    Outcome,
    WebhookDelivery,
)
from dfj_sandbox.jira_sim.dispatch import WebhookPolicy
from dfj_sandbox.jira_sim.forge import (
    CONNECT_CLIENT_KEY_PROPERTY,
    JWKS_PATH,
    ForgePlatform,
    RemoteAnswer,
)
from dfj_sandbox.jira_sim.forge_installation import ForgeInstallation, ForgePolicy
from dfj_sandbox.jira_sim.forge_manifest import ForgeManifest, ManifestRefused, load_manifest
from dfj_sandbox.jira_sim.forge_tokens import OfflineTokenRequest
from dfj_sandbox.jira_sim.jql import JqlSyntaxError, Query, parse
from dfj_sandbox.jira_sim.jql_eval import CompiledQuery, JqlError, compile_query
from dfj_sandbox.jira_sim.model import (
    ALL_PROJECTS,
    MEMBER_PERMISSIONS,
    PERMISSIONS,
    ChangeItem,
    Changelog,
    Comment,
    Issue,
    IssueType,
    Priority,
    Project,
    SecurityLevel,
    Status,
    Transition,
    User,
    Visibility,
    Workflow,
)
from dfj_sandbox.jira_sim.openapi import SPEC_ENV, OpenApiSpec, SpecViolation, locate_spec
from dfj_sandbox.jira_sim.routes import Limits
from dfj_sandbox.jira_sim.server import INSTALL_KEYS_PATH, TOKEN_PATH, Call, JiraSimulator
from dfj_sandbox.jira_sim.servlet import SERVLET_TEMPLATE
from dfj_sandbox.jira_sim.site import DEFAULT_PROJECT_KEY, DEFAULT_SCOPES, UNSET, Site

__all__ = [
    "ALL_PROJECTS",
    "CONNECT_CLIENT_KEY_PROPERTY",
    "DEFAULT_PROJECT_KEY",
    "DEFAULT_SCOPES",
    "INSTALL_KEYS_PATH",
    "JWKS_PATH",
    "MEMBER_PERMISSIONS",
    "PERMISSIONS",
    "SERVLET_TEMPLATE",
    "SPEC_ENV",
    "TOKEN_PATH",
    "UNSET",
    "AppInstallation",
    "Call",
    "Change",
    "ChangeItem",
    "Changelog",
    "Comment",
    "CommentAdded",
    "CommentDeleted",
    "CommentUpdated",
    "CompiledQuery",
    "DeliveryAttempt",
    "ForgeDelivery",
    "ForgeInstallation",
    "ForgeManifest",
    "ForgePlatform",
    "ForgePolicy",
    "InstallRefused",
    "Issue",
    "IssueCreated",
    "IssueDeleted",
    "IssueType",
    "IssueUpdated",
    "JiraSimulator",
    "JqlError",
    "JqlSyntaxError",
    "LifecycleDelivery",
    "LifecyclePolicy",
    "Limits",
    "ManifestRefused",
    "Observer",
    "OfflineTokenRequest",
    "OpenApiSpec",
    "Outcome",
    "PageModule",
    "Priority",
    "Project",
    "Query",
    "RemoteAnswer",
    "SecurityLevel",
    "Site",
    "SpecViolation",
    "Status",
    "Transition",
    "User",
    "Visibility",
    "WebhookDelivery",
    "WebhookModule",
    "WebhookPolicy",
    "Workflow",
    "compile_query",
    "load_manifest",
    "locate_spec",
    "parse",
]
