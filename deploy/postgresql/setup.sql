-- PostgreSQL for a Quartier community server (run as the postgres superuser:
--   sudo -u postgres psql -v ON_ERROR_STOP=1 -f deploy/postgresql/setup.sql).
--
-- One role, `quartier`, owning one database. The services run as the `quartier` system
-- user and connect over the Unix socket with peer authentication (Debian's default
-- `local all all peer` line in pg_hba.conf), so there is no password to store:
--   QUARTIER_DATABASE_URL=postgresql+psycopg2:///quartier?host=/var/run/postgresql
-- The schema is created and migrated by the programs themselves (Alembic).

SELECT 'CREATE ROLE quartier LOGIN'
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'quartier') \gexec

SELECT 'CREATE DATABASE quartier OWNER quartier ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'quartier') \gexec

-- Nobody else connects to it.
REVOKE ALL ON DATABASE quartier FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE quartier TO quartier;

\connect quartier
-- PostgreSQL 15 no longer lets every role create in `public`; the owner gets it.
ALTER SCHEMA public OWNER TO quartier;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
