-- Database users for the services' managed identities, after `az deployment group create`.
--
-- Bicep cannot do this: only an Entra administrator of the server can create users FROM
-- EXTERNAL PROVIDER, connected to the application database (not master). Run it once per
-- environment, and again whenever an identity is recreated. It is idempotent.
--
--   sqlcmd -S tcp:<sqlServerFqdn>,1433 -d dfj --authentication-method ActiveDirectoryDefault \
--     -i deploy/sql/create-users.sql \
--     -v GATEWAY_IDENTITY=dfj-gateway-id -v JIRA_WORKER_IDENTITY=dfj-jira-worker-id \
--     -v DISCORD_WORKER_IDENTITY=dfj-discord-worker-id -v LINKER_IDENTITY=dfj-linker-id \
--     -v MIGRATE_IDENTITY=dfj-migrate-id
--
-- (go-sqlcmd flags; with the ODBC sqlcmd use -G and one -v with the pairs. The Azure portal's
-- query editor also works: replace each $(NAME) by hand.)
--
-- The names are the deployment's `sqlUsers` output (the user-assigned identities' names).
-- Least privilege: the gateway only reads (DESIGN.md: it never writes); the workers read and
-- write rows; only the migrate job's identity changes the schema.

SET NOCOUNT ON;

-- gateway: reads installations, cached metadata and link status; never writes.
IF DATABASE_PRINCIPAL_ID(N'$(GATEWAY_IDENTITY)') IS NULL
    CREATE USER [$(GATEWAY_IDENTITY)] FROM EXTERNAL PROVIDER;
ALTER ROLE db_datareader ADD MEMBER [$(GATEWAY_IDENTITY)];

-- jira-worker: installations, subscriptions, drafts, caches, processed ids.
IF DATABASE_PRINCIPAL_ID(N'$(JIRA_WORKER_IDENTITY)') IS NULL
    CREATE USER [$(JIRA_WORKER_IDENTITY)] FROM EXTERNAL PROVIDER;
ALTER ROLE db_datareader ADD MEMBER [$(JIRA_WORKER_IDENTITY)];
ALTER ROLE db_datawriter ADD MEMBER [$(JIRA_WORKER_IDENTITY)];

-- discord-worker: delivery log, packs and threads, processed ids.
IF DATABASE_PRINCIPAL_ID(N'$(DISCORD_WORKER_IDENTITY)') IS NULL
    CREATE USER [$(DISCORD_WORKER_IDENTITY)] FROM EXTERNAL PROVIDER;
ALTER ROLE db_datareader ADD MEMBER [$(DISCORD_WORKER_IDENTITY)];
ALTER ROLE db_datawriter ADD MEMBER [$(DISCORD_WORKER_IDENTITY)];

-- linker: links, guild connections, role rules, privacy and retention jobs.
IF DATABASE_PRINCIPAL_ID(N'$(LINKER_IDENTITY)') IS NULL
    CREATE USER [$(LINKER_IDENTITY)] FROM EXTERNAL PROVIDER;
ALTER ROLE db_datareader ADD MEMBER [$(LINKER_IDENTITY)];
ALTER ROLE db_datawriter ADD MEMBER [$(LINKER_IDENTITY)];

-- migrate job: `python -m dfj_common.cli migrate` creates and alters tables (Alembic keeps
-- its version in alembic_version, which it reads and writes).
IF DATABASE_PRINCIPAL_ID(N'$(MIGRATE_IDENTITY)') IS NULL
    CREATE USER [$(MIGRATE_IDENTITY)] FROM EXTERNAL PROVIDER;
ALTER ROLE db_ddladmin ADD MEMBER [$(MIGRATE_IDENTITY)];
ALTER ROLE db_datareader ADD MEMBER [$(MIGRATE_IDENTITY)];
ALTER ROLE db_datawriter ADD MEMBER [$(MIGRATE_IDENTITY)];
-- db_ddladmin alone may not create foreign keys to tables it does not own.
GRANT REFERENCES ON SCHEMA::dbo TO [$(MIGRATE_IDENTITY)];
GO
