-- The checklist's memory probe, on tutormax_db.
SELECT pg_size_bytes(current_setting('shared_buffers')) AS shared_buffers,
       pg_size_bytes(current_setting('work_mem')) AS work_mem,
       current_setting('max_connections')::int AS max_connections
