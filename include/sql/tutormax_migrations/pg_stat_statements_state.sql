-- Whether pg_stat_statements is installed in this database, and whether this role could install it
-- (it is not a trusted extension: only a superuser may create it).
SELECT
    EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS installed,
    (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser
