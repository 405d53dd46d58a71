-- The cluster's identity, fixed at initdb and kept by its physical replicas. pg_control_system() needs
-- pg_monitor or superuser on some versions: the caller treats "permission denied" as unknown.
SELECT system_identifier::text FROM pg_catalog.pg_control_system()
