// Discord for Jira on Azure: Container Apps (one app per service, each worker scaled by KEDA on
// its own queue), Service Bus, Azure SQL (Entra-only), Key Vault (RBAC), Log Analytics and
// Application Insights, a registry, and one user-assigned identity per service.
//
//   az deployment group create -g <rg> -f deploy/main.bicep -p deployApps=false ...   (infrastructure)
//   az deployment group create -g <rg> -f deploy/main.bicep -p imageTag=<tag> ...     (apps)
//
// See deploy/README.md for the steps, the secrets and the post-deploy SQL script. Queue shapes
// and the producer/consumer roles come from libs/common/src/dfj_common/bus/topology.py; the tests
// in tests/deploy/ fail when this file and the topology disagree.

targetScope = 'resourceGroup'

@description('Azure region. EU by default, so that the data stays in the EU.')
param location string = 'westeurope'

@minLength(2)
@maxLength(10)
@description('Prefix of every resource name (lowercase letters, digits, dashes).')
param namePrefix string = 'dfj'

param tags object = {
  app: 'discord-for-jira'
}

@description('False for the first run: infrastructure only (registry, vault, bus, SQL), no apps yet.')
param deployApps bool = true

@description('Image tag to run; the images are <registry>/dfj-<service>:<tag>.')
param imageTag string = 'latest'

@description('Public base URL of the gateway; empty: the gateway app HTTPS address.')
param publicUrl string = ''

@description('Connect app key (DFJ_APP_KEY).')
param appKey string = 'discord-for-jira'

@description('Discord application id (DFJ_DISCORD_APPLICATION_ID).')
param discordApplicationId string = ''

@description('Discord application public key, hex (DFJ_DISCORD_PUBLIC_KEY).')
param discordPublicKey string = ''

@description('Forge app id, when Forge Remote is used (DFJ_FORGE_APP_ID).')
param forgeAppId string = ''

@description('Azure OpenAI endpoint for field suggestions; empty: the built-in heuristic.')
param azureOpenAiEndpoint string = ''

param azureOpenAiDeployment string = ''

@allowed([
  'debug'
  'info'
  'warning'
  'error'
])
param logLevel string = 'info'

// -- scaling ---------------------------------------------------------------------------------

@minValue(1)
@description('The gateway never scales to zero: Discord answers are due within 3 seconds.')
param gatewayMinReplicas int = 1

@minValue(1)
param gatewayMaxReplicas int = 5

@minValue(1)
param gatewayConcurrentRequests int = 50

@minValue(0)
@maxValue(1)
@description('0: a worker scales to zero when its queues are empty; 1: always one warm replica.')
param workerMinReplicas int = 0

@minValue(1)
param jiraWorkerMaxReplicas int = 10

@minValue(1)
@description('Each replica gets an equal share of the bot global Discord budget.')
param discordWorkerMaxReplicas int = 1

@minValue(1)
param linkerMaxReplicas int = 5

@minValue(1)
@description('KEDA messageCount: active messages per replica before a worker scales out.')
param messagesPerReplica int = 20

@minValue(1)
@description('Discord requests per second for the whole bot (Discord default: 50).')
param discordGlobalRequestsPerSecond int = 50

@minValue(1)
@description('DFJ_DRAIN_GRACE_SECONDS; replicas get this plus 5 s before SIGKILL.')
param drainGraceSeconds int = 25

@description('Grant each worker Data Owner on its queues, for a KEDA scaler that cannot read counts otherwise.')
param grantScalerDataOwner bool = false

// -- data ------------------------------------------------------------------------------------

@allowed([
  'Standard'
  'Premium'
])
@description('Sessions and duplicate detection need Standard or Premium.')
param serviceBusSku string = 'Standard'

@description('Display name of the Entra group (or user) that administers Azure SQL.')
param sqlAdminLogin string

@description('Object id of that Entra principal.')
param sqlAdminObjectId string

@allowed([
  'Group'
  'User'
  'Application'
])
param sqlAdminPrincipalType string = 'Group'

param sqlDatabaseSku object = {
  name: 'S0'
  tier: 'Standard'
}

@description('Object id of the operator who puts secrets into Key Vault (Secrets Officer); empty: none.')
param operatorObjectId string = ''

@minValue(30)
param logRetentionDays int = 30

// -- names -----------------------------------------------------------------------------------

var suffix = uniqueString(resourceGroup().id)
var compactPrefix = replace(namePrefix, '-', '')
var registryName = take('${compactPrefix}acr${suffix}', 50)
var keyVaultName = take('${compactPrefix}kv${suffix}', 24)
var serviceBusName = '${namePrefix}-sb-${suffix}'
var sqlServerName = '${namePrefix}-sql-${suffix}'
var sqlDatabaseName = 'dfj'
var gatewayAppName = '${namePrefix}-gateway'
var publicBaseUrl = empty(publicUrl) ? 'https://${gatewayAppName}.${appsEnvironment.properties.defaultDomain}' : publicUrl

var roleIds = {
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  acrPull: '7f951dda-4ed3-4680-a7ca-43fe172d538d'
}

// -- queues (dfj_common.bus.topology.TOPOLOGY, rendered by bicep_queue_properties) -----------

var queueDefinitions = [
  {
    name: 'jira-events'
    properties: {
      lockDuration: 'PT30S'
      maxDeliveryCount: 10
      requiresSession: true
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: 'P14D'
      enablePartitioning: false
      enableBatchedOperations: true
    }
  }
  {
    name: 'jira-commands'
    properties: {
      lockDuration: 'PT30S'
      maxDeliveryCount: 10
      requiresSession: false
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: 'P14D'
      enablePartitioning: false
      enableBatchedOperations: true
    }
  }
  {
    name: 'discord-outbox'
    properties: {
      lockDuration: 'PT30S'
      maxDeliveryCount: 10
      requiresSession: true
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: 'P14D'
      enablePartitioning: false
      enableBatchedOperations: true
    }
  }
  {
    name: 'linker'
    properties: {
      lockDuration: 'PT30S'
      maxDeliveryCount: 10
      requiresSession: false
      requiresDuplicateDetection: true
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: 'P14D'
      enablePartitioning: false
      enableBatchedOperations: true
    }
  }
]

// Least privilege per queue. A service sends to the queues it publishes to; a worker receives
// from the queues it consumes, and also sends to a consumed queue without sessions, because a
// retry there is a scheduled copy of the message (on a session queue a retry is an abandon).
// The gateway only sends.
var queueRoles = [
  { service: 'gateway', queue: 'jira-events', role: 'serviceBusDataSender' }
  { service: 'gateway', queue: 'jira-commands', role: 'serviceBusDataSender' }
  { service: 'gateway', queue: 'linker', role: 'serviceBusDataSender' }
  { service: 'jira-worker', queue: 'jira-events', role: 'serviceBusDataReceiver' }
  { service: 'jira-worker', queue: 'jira-commands', role: 'serviceBusDataReceiver' }
  { service: 'jira-worker', queue: 'jira-commands', role: 'serviceBusDataSender' }
  { service: 'jira-worker', queue: 'discord-outbox', role: 'serviceBusDataSender' }
  { service: 'jira-worker', queue: 'linker', role: 'serviceBusDataSender' }
  { service: 'discord-worker', queue: 'discord-outbox', role: 'serviceBusDataReceiver' }
  { service: 'linker', queue: 'linker', role: 'serviceBusDataReceiver' }
  { service: 'linker', queue: 'linker', role: 'serviceBusDataSender' }
  { service: 'linker', queue: 'discord-outbox', role: 'serviceBusDataSender' }
  { service: 'linker', queue: 'jira-commands', role: 'serviceBusDataSender' }
]

// The queues each worker consumes: its KEDA scale rules (and, optionally, Data Owner for them).
var consumedQueues = [
  { service: 'jira-worker', queue: 'jira-events' }
  { service: 'jira-worker', queue: 'jira-commands' }
  { service: 'discord-worker', queue: 'discord-outbox' }
  { service: 'linker', queue: 'linker' }
]

// -- identities ------------------------------------------------------------------------------

resource gatewayIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-gateway-id'
  location: location
  tags: tags
}

resource jiraWorkerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-jira-worker-id'
  location: location
  tags: tags
}

resource discordWorkerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-discord-worker-id'
  location: location
  tags: tags
}

resource linkerIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-linker-id'
  location: location
  tags: tags
}

@description('Runs the schema migrations (the migrate job); owns DDL, no bus or vault access.')
resource migrateIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-migrate-id'
  location: location
  tags: tags
}

var principals = {
  gateway: gatewayIdentity.properties.principalId
  'jira-worker': jiraWorkerIdentity.properties.principalId
  'discord-worker': discordWorkerIdentity.properties.principalId
  linker: linkerIdentity.properties.principalId
}

var pullPrincipals = union(principals, {
  migrate: migrateIdentity.properties.principalId
})

// Loops run over names known before the deployment starts; principal ids are looked up inside.
var serviceNames = [
  'gateway'
  'jira-worker'
  'discord-worker'
  'linker'
]

// -- monitoring ------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-appi-${suffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
  }
}

resource appsEnvironment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: '${namePrefix}-env-${suffix}'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logAnalytics.properties.customerId
        sharedKey: logAnalytics.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
    ]
  }
}

// -- registry --------------------------------------------------------------------------------

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: registryName
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
  }
}

resource acrPull 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for identityName in concat(serviceNames, ['migrate']): {
    name: guid(registry.id, identityName, roleIds.acrPull)
    scope: registry
    properties: {
      principalId: pullPrincipals[identityName]
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.acrPull)
    }
  }
]

// -- Service Bus -----------------------------------------------------------------------------

resource serviceBus 'Microsoft.ServiceBus/namespaces@2024-01-01' = {
  name: serviceBusName
  location: location
  tags: tags
  sku: {
    name: serviceBusSku
    tier: serviceBusSku
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' = [
  for queue in queueDefinitions: {
    parent: serviceBus
    name: queue.name
    properties: queue.properties
  }
]

resource roleQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = [
  for assignment in queueRoles: {
    parent: serviceBus
    name: assignment.queue
  }
]

resource queueRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (assignment, i) in queueRoles: {
    name: guid(serviceBus.id, assignment.queue, assignment.service, assignment.role)
    scope: roleQueues[i]
    properties: {
      principalId: principals[assignment.service]
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds[assignment.role])
    }
    dependsOn: [
      queues
    ]
  }
]

var scalerOwnerTargets = grantScalerDataOwner ? consumedQueues : []

resource scalerQueues 'Microsoft.ServiceBus/namespaces/queues@2024-01-01' existing = [
  for consumed in scalerOwnerTargets: {
    parent: serviceBus
    name: consumed.queue
  }
]

resource scalerRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (consumed, i) in scalerOwnerTargets: {
    name: guid(serviceBus.id, consumed.queue, consumed.service, 'serviceBusDataOwner')
    scope: scalerQueues[i]
    properties: {
      principalId: principals[consumed.service]
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.serviceBusDataOwner)
    }
    dependsOn: [
      queues
    ]
  }
]

// -- Azure SQL (Entra-only; database users are created by deploy/sql/create-users.sql) ------

resource sqlServer 'Microsoft.Sql/servers@2023-08-01-preview' = {
  name: sqlServerName
  location: location
  tags: tags
  properties: {
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true
      login: sqlAdminLogin
      sid: sqlAdminObjectId
      principalType: sqlAdminPrincipalType
      tenantId: tenant().tenantId
    }
  }
}

// Container Apps on the Consumption profile have no fixed egress address: allow Azure sources;
// Entra-only authentication is what keeps others out (see deploy/README.md for private links).
resource sqlAllowAzure 'Microsoft.Sql/servers/firewallRules@2023-08-01-preview' = {
  parent: sqlServer
  name: 'AllowAllWindowsAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource sqlDatabase 'Microsoft.Sql/servers/databases@2023-08-01-preview' = {
  parent: sqlServer
  name: sqlDatabaseName
  location: location
  tags: tags
  sku: sqlDatabaseSku
  properties: {
    collation: 'SQL_Latin1_General_CP1_CI_AS'
  }
}

// -- Key Vault (RBAC) ------------------------------------------------------------------------

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for service in serviceNames: {
    name: guid(keyVault.id, service, roleIds.keyVaultSecretsUser)
    scope: keyVault
    properties: {
      principalId: principals[service]
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    }
  }
]

resource secretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorObjectId)) {
  name: guid(keyVault.id, operatorObjectId, roleIds.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    principalId: operatorObjectId
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
  }
}

// -- the apps --------------------------------------------------------------------------------

var appInsightsSecret = {
  name: 'appinsights-connection-string'
  value: appInsights.properties.ConnectionString
}

var commonEnv = [
  { name: 'DFJ_BIND_HOST', value: '0.0.0.0' }
  { name: 'DFJ_PUBLIC_URL', value: publicBaseUrl }
  { name: 'DFJ_APP_KEY', value: appKey }
  { name: 'DFJ_DISCORD_APPLICATION_ID', value: discordApplicationId }
  { name: 'DFJ_DISCORD_PUBLIC_KEY', value: discordPublicKey }
  { name: 'DFJ_FORGE_APP_ID', value: forgeAppId }
  { name: 'DFJ_BUS', value: 'servicebus' }
  { name: 'DFJ_SERVICEBUS_NAMESPACE', value: '${serviceBus.name}.servicebus.windows.net' }
  { name: 'DFJ_KEYVAULT_URL', value: keyVault.properties.vaultUri }
  { name: 'DFJ_TELEMETRY', value: 'azure' }
  { name: 'DFJ_APPLICATIONINSIGHTS_CONNECTION_STRING', secretRef: 'appinsights-connection-string' }
  { name: 'DFJ_LOG_FORMAT', value: 'json' }
  { name: 'DFJ_LOG_LEVEL', value: logLevel }
  { name: 'AZURE_TOKEN_CREDENTIALS', value: 'ManagedIdentityCredential' }
]

var registryServer = registry.properties.loginServer
var sqlServerFqdn = sqlServer.properties.fullyQualifiedDomainName

module gateway 'modules/containerapp.bicep' = if (deployApps) {
  name: 'app-gateway'
  params: {
    name: gatewayAppName
    location: location
    tags: tags
    service: 'gateway'
    environmentId: appsEnvironment.id
    image: '${registryServer}/dfj-gateway:${imageTag}'
    registryServer: registryServer
    identityId: gatewayIdentity.id
    identityClientId: gatewayIdentity.properties.clientId
    sqlServerFqdn: sqlServerFqdn
    sqlDatabaseName: sqlDatabaseName
    port: 8080
    externalIngress: true
    minReplicas: gatewayMinReplicas
    maxReplicas: gatewayMaxReplicas
    httpConcurrentRequests: gatewayConcurrentRequests
    scaleQueues: []
    serviceBusNamespaceName: serviceBus.name
    // /readyz pings the bus by peeking a dead-letter queue, which needs Listen: a send-only
    // identity would never turn ready. See deploy/README.md, "Probes".
    readinessPath: '/healthz'
    drainGraceSeconds: drainGraceSeconds
    env: concat(commonEnv, [
      { name: 'DFJ_GATEWAY_PORT', value: '8080' }
    ])
    secrets: [
      appInsightsSecret
    ]
  }
  dependsOn: [
    acrPull
    secretsUser
    queueRoleAssignments
  ]
}

module jiraWorker 'modules/containerapp.bicep' = if (deployApps) {
  name: 'app-jira-worker'
  params: {
    name: '${namePrefix}-jira-worker'
    location: location
    tags: tags
    service: 'jira-worker'
    environmentId: appsEnvironment.id
    image: '${registryServer}/dfj-jira-worker:${imageTag}'
    registryServer: registryServer
    identityId: jiraWorkerIdentity.id
    identityClientId: jiraWorkerIdentity.properties.clientId
    sqlServerFqdn: sqlServerFqdn
    sqlDatabaseName: sqlDatabaseName
    port: 8081
    minReplicas: workerMinReplicas
    maxReplicas: jiraWorkerMaxReplicas
    scaleQueues: [
      'jira-events'
      'jira-commands'
    ]
    serviceBusNamespaceName: serviceBus.name
    messagesPerReplica: messagesPerReplica
    // Its identity receives from jira-events, the queue the readiness ping peeks.
    readinessPath: '/readyz'
    drainGraceSeconds: drainGraceSeconds
    env: concat(commonEnv, [
      { name: 'DFJ_JIRA_WORKER_PORT', value: '8081' }
      { name: 'DFJ_AZURE_OPENAI_ENDPOINT', value: azureOpenAiEndpoint }
      { name: 'DFJ_AZURE_OPENAI_DEPLOYMENT', value: azureOpenAiDeployment }
    ])
    secrets: [
      appInsightsSecret
    ]
  }
  dependsOn: [
    acrPull
    secretsUser
    queueRoleAssignments
  ]
}

module discordWorker 'modules/containerapp.bicep' = if (deployApps) {
  name: 'app-discord-worker'
  params: {
    name: '${namePrefix}-discord-worker'
    location: location
    tags: tags
    service: 'discord-worker'
    environmentId: appsEnvironment.id
    image: '${registryServer}/dfj-discord-worker:${imageTag}'
    registryServer: registryServer
    identityId: discordWorkerIdentity.id
    identityClientId: discordWorkerIdentity.properties.clientId
    sqlServerFqdn: sqlServerFqdn
    sqlDatabaseName: sqlDatabaseName
    port: 8082
    minReplicas: workerMinReplicas
    maxReplicas: discordWorkerMaxReplicas
    scaleQueues: [
      'discord-outbox'
    ]
    serviceBusNamespaceName: serviceBus.name
    messagesPerReplica: messagesPerReplica
    readinessPath: '/healthz'
    drainGraceSeconds: drainGraceSeconds
    env: concat(commonEnv, [
      { name: 'DFJ_DISCORD_WORKER_PORT', value: '8082' }
      { name: 'DFJ_DISCORD_BOT_TOKEN', secretRef: 'discord-bot-token' }
      // Each process keeps its own global limiter: split the bot budget between replicas.
      { name: 'DFJ_DISCORD_GLOBAL_REQUESTS_PER_SECOND', value: string(max(1, discordGlobalRequestsPerSecond / discordWorkerMaxReplicas)) }
    ])
    secrets: [
      appInsightsSecret
      {
        name: 'discord-bot-token'
        keyVaultUrl: '${keyVault.properties.vaultUri}secrets/discord-bot-token'
        identity: discordWorkerIdentity.id
      }
    ]
  }
  dependsOn: [
    acrPull
    secretsUser
    queueRoleAssignments
  ]
}

module linker 'modules/containerapp.bicep' = if (deployApps) {
  name: 'app-linker'
  params: {
    name: '${namePrefix}-linker'
    location: location
    tags: tags
    service: 'linker'
    environmentId: appsEnvironment.id
    image: '${registryServer}/dfj-linker:${imageTag}'
    registryServer: registryServer
    identityId: linkerIdentity.id
    identityClientId: linkerIdentity.properties.clientId
    sqlServerFqdn: sqlServerFqdn
    sqlDatabaseName: sqlDatabaseName
    port: 8083
    minReplicas: workerMinReplicas
    maxReplicas: linkerMaxReplicas
    scaleQueues: [
      'linker'
    ]
    serviceBusNamespaceName: serviceBus.name
    messagesPerReplica: messagesPerReplica
    readinessPath: '/healthz'
    drainGraceSeconds: drainGraceSeconds
    env: concat(commonEnv, [
      { name: 'DFJ_LINKER_PORT', value: '8083' }
      { name: 'DFJ_DISCORD_CLIENT_SECRET', secretRef: 'discord-client-secret' }
    ])
    secrets: [
      appInsightsSecret
      {
        name: 'discord-client-secret'
        keyVaultUrl: '${keyVault.properties.vaultUri}secrets/discord-client-secret'
        identity: linkerIdentity.id
      }
    ]
  }
  dependsOn: [
    acrPull
    secretsUser
    queueRoleAssignments
  ]
}

// Schema migrations, run once per release before the apps roll (deploy/README.md):
//   az containerapp job start -g <rg> -n <namePrefix>-migrate
resource migrateJob 'Microsoft.App/jobs@2025-01-01' = if (deployApps) {
  name: '${namePrefix}-migrate'
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${migrateIdentity.id}': {}
    }
  }
  properties: {
    environmentId: appsEnvironment.id
    workloadProfileName: 'Consumption'
    configuration: {
      triggerType: 'Manual'
      replicaTimeout: 900
      replicaRetryLimit: 1
      manualTriggerConfig: {
        parallelism: 1
        replicaCompletionCount: 1
      }
      registries: [
        {
          server: registryServer
          identity: migrateIdentity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'migrate'
          image: '${registryServer}/dfj-linker:${imageTag}'
          command: [
            'python'
            '-m'
            'dfj_common.cli'
            'migrate'
          ]
          env: [
            { name: 'DFJ_DATABASE_URL', value: concat('mssql+pyodbc:///?odbc_connect=', uriComponent(format('Driver={{ODBC Driver 18 for SQL Server}};Server=tcp:{0},1433;Database={1};Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;Authentication=ActiveDirectoryMsi;UID={2}', sqlServerFqdn, sqlDatabaseName, migrateIdentity.properties.clientId))) }
            { name: 'DFJ_LOG_FORMAT', value: 'json' }
            { name: 'AZURE_CLIENT_ID', value: migrateIdentity.properties.clientId }
          ]
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
        }
      ]
    }
  }
  dependsOn: [
    acrPull
  ]
}

// -- outputs ---------------------------------------------------------------------------------

@description('Put this in DFJ_PUBLIC_URL (already set on the apps) and in the Connect descriptor baseUrl.')
output gatewayUrl string = publicBaseUrl

@description('The Connect descriptor a Jira administrator installs the app from.')
output descriptorUrl string = '${publicBaseUrl}/atlassian-connect.json'

@description('Discord Developer Portal: Interactions Endpoint URL.')
output interactionsEndpointUrl string = '${publicBaseUrl}/discord/interactions'

@description('Discord Developer Portal: OAuth2 redirect.')
output oauthRedirectUri string = '${publicBaseUrl}/oauth/discord/callback'

output registryLoginServer string = registry.properties.loginServer
output keyVaultName string = keyVault.name
output keyVaultUri string = keyVault.properties.vaultUri
output serviceBusNamespace string = serviceBus.name
output sqlServerFqdn string = sqlServerFqdn
output sqlDatabaseName string = sqlDatabaseName
output migrateJobName string = '${namePrefix}-migrate'

@description('Database users to create with deploy/sql/create-users.sql (identity names).')
output sqlUsers object = {
  gateway: gatewayIdentity.name
  jiraWorker: jiraWorkerIdentity.name
  discordWorker: discordWorkerIdentity.name
  linker: linkerIdentity.name
  migrate: migrateIdentity.name
}
