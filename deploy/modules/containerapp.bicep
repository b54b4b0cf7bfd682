// One Discord for Jira service as a Container App: its own user-assigned identity, probes on the
// service's health port, a drain period that matches DFJ_DRAIN_GRACE_SECONDS, and scale rules.
//
// Scaling: the gateway (external ingress) scales on concurrent HTTP requests; a worker scales
// with KEDA's azure-servicebus scaler on each queue it consumes, authenticated with the app's
// identity (no SAS secret). `namespace` in the scaler metadata is the namespace *name*, not
// its FQDN. `identity` on a custom scale rule needs Microsoft.App 2025-01-01 or later.

@description('Container app name (also its ingress host name prefix).')
param name string

param location string
param tags object = {}

@description('Service name: gateway, jira-worker, discord-worker or linker.')
param service string

@description('Resource id of the Container Apps managed environment.')
param environmentId string

@description('Full image reference, e.g. myacr.azurecr.io/dfj-gateway:1.4.2.')
param image string

@description('Login server of the registry the image is pulled from with the identity.')
param registryServer string

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of that identity (AZURE_CLIENT_ID, the SQL UID).')
param identityClientId string

@description('Azure SQL server host name; the service signs in with its identity.')
param sqlServerFqdn string

param sqlDatabaseName string

@description('Port of the health endpoints (the gateway HTTP port).')
param port int

@description('True for the gateway only: external HTTPS ingress on `port`.')
param externalIngress bool = false

@minValue(0)
param minReplicas int

@minValue(1)
param maxReplicas int

@description('Queues this service consumes; one KEDA azure-servicebus rule each.')
param scaleQueues array = []

@description('Service Bus namespace name (not the FQDN), for the KEDA scaler.')
param serviceBusNamespaceName string

@minValue(1)
@description('Target of active messages per replica (KEDA messageCount).')
param messagesPerReplica int = 20

@minValue(1)
@description('Concurrent HTTP requests per replica before the gateway scales out.')
param httpConcurrentRequests int = 50

@description('Path of the readiness probe: /readyz checks the bus and database, /healthz only the process.')
@allowed([
  '/healthz'
  '/readyz'
])
param readinessPath string = '/healthz'

@minValue(1)
@description('Seconds a stopping replica drains in-flight work (DFJ_DRAIN_GRACE_SECONDS).')
param drainGraceSeconds int = 25

@description('Environment variables (name/value or name/secretRef objects), shared and specific.')
param env array

@description('Container App secrets: {name, value} or {name, keyVaultUrl, identity}.')
param secrets array = []

param cpu string = '0.5'
param memory string = '1Gi'

// ODBC Driver 18 with the user-assigned identity (Authentication=ActiveDirectoryMsi + UID), as
// dfj_common.storage.engine expects it: mssql+pyodbc with the ODBC string in odbc_connect.
var odbcConnectionString = format('Driver={{ODBC Driver 18 for SQL Server}};Server=tcp:{0},1433;Database={1};Encrypt=yes;TrustServerCertificate=no;Connection Timeout=30;Authentication=ActiveDirectoryMsi;UID={2}', sqlServerFqdn, sqlDatabaseName, identityClientId)
var databaseUrl = concat('mssql+pyodbc:///?odbc_connect=', uriComponent(odbcConnectionString))

var httpRule = {
  name: 'http-concurrency'
  http: {
    metadata: {
      concurrentRequests: string(httpConcurrentRequests)
    }
  }
}
var httpRules = externalIngress ? [httpRule] : []

var ingressConfig = {
  external: true
  targetPort: port
  transport: 'auto'
  allowInsecure: false
}

var queueRules = [
  for queue in scaleQueues: {
    name: '${queue}-depth'
    custom: {
      type: 'azure-servicebus'
      metadata: {
        namespace: serviceBusNamespaceName
        queueName: queue
        messageCount: string(messagesPerReplica)
      }
      identity: identityId
    }
  }
]

resource app 'Microsoft.App/containerApps@2025-01-01' = {
  name: name
  location: location
  tags: union(tags, { 'dfj-service': service })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environmentId
    workloadProfileName: 'Consumption'
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: externalIngress ? ingressConfig : null
      registries: [
        {
          server: registryServer
          identity: identityId
        }
      ]
      secrets: secrets
    }
    template: {
      // The orchestrator's SIGTERM → SIGKILL window: the drain plus time to close connections.
      terminationGracePeriodSeconds: drainGraceSeconds + 5
      containers: [
        {
          name: service
          image: image
          resources: {
            cpu: json(cpu)
            memory: memory
          }
          env: concat(env, [
            {
              name: 'DFJ_DATABASE_URL'
              value: databaseUrl
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
            {
              name: 'OTEL_SERVICE_NAME'
              value: service
            }
            {
              name: 'DFJ_DRAIN_GRACE_SECONDS'
              value: string(drainGraceSeconds)
            }
          ])
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: '/healthz'
                port: port
              }
              periodSeconds: 2
              failureThreshold: 30
            }
            {
              type: 'Liveness'
              httpGet: {
                path: '/healthz'
                port: port
              }
              periodSeconds: 10
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: readinessPath
                port: port
              }
              periodSeconds: 10
              timeoutSeconds: 5
              failureThreshold: 3
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        pollingInterval: 15
        cooldownPeriod: 300
        rules: concat(httpRules, queueRules)
      }
    }
  }
}

output name string = app.name
output fqdn string = app.properties.configuration.?ingress.?fqdn ?? ''
