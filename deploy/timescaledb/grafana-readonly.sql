-- The read-only role Grafana's datasource logs in with (run by the compose one-shot `db-grants` after
-- `parkpulse db migrate`, so it covers every table the migrations made). Idempotent.
--   psql -v ro_user=... -v ro_password=... -f grafana-readonly.sql
-- API key material (api_clients, api_client_parks) stays invisible to dashboards; queries time out at 30 s.
\set ON_ERROR_STOP on

SELECT format('CREATE ROLE %I LOGIN', :'ro_user')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'ro_user')
\gexec

SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'ro_user', :'ro_password')
\gexec
SELECT format('ALTER ROLE %I SET statement_timeout = %L', :'ro_user', '30s')
\gexec
SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', :'ro_user')
\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), :'ro_user')
\gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'ro_user')
\gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', :'ro_user')
\gexec
SELECT format('REVOKE ALL ON TABLE %s FROM %I', string_agg(quote_ident(c.relname), ', '), :'ro_user')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname IN ('api_clients', 'api_client_parks')
HAVING count(*) > 0
\gexec
